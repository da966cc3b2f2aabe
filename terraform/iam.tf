locals {
  # What each service may touch besides BigQuery jobs: its dataset role, object roles on the
  # buckets its code uses and the topics it publishes to (each step publishes to the next one).
  # api only reads runs and results; every event-driven step writes its rows and the dedupe
  # ledger. import reads the raw files and marks rejected ones (object metadata), never deletes
  # or overwrites one; plan writes each run's artifacts once (a retry after publishing skips the
  # upload), never reads them back; forecast and retrain use no bucket. training (the scheduled
  # training check) updates model_versions and writes model_diagnostics. The plan step announces
  # a plan for review; the api's workbench releases it: it appends planners' decisions and its
  # once-only release claim, writes the released loads and routes (table-level grants below) and
  # publishes the released lines.
  access = {
    api      = { dataset = "roles/bigquery.dataViewer", buckets = {}, publishes = ["dispatch", "import", "reorders", "retrain"] }
    dispatch = { dataset = "roles/bigquery.dataEditor", buckets = {}, publishes = [] }
    forecast = { dataset = "roles/bigquery.dataEditor", buckets = {}, publishes = ["plan"] }
    import   = { dataset = "roles/bigquery.dataEditor", buckets = { raw = google_project_iam_custom_role.raw_import.name }, publishes = ["forecast"] }
    plan     = { dataset = "roles/bigquery.dataEditor", buckets = { artifacts = "roles/storage.objectCreator" }, publishes = ["published"] }
    retrain  = { dataset = "roles/bigquery.dataEditor", buckets = {}, publishes = [] }
    training = { dataset = "roles/bigquery.dataEditor", buckets = {}, publishes = [] }
  }
  bucket_grants = merge([
    for s, a in local.access : { for b, role in a.buckets : "${s}/${b}" => { service = s, bucket = b, role = role } }
  ]...)
  # Tables a reading service writes: the api appends workbench decisions and claims releases,
  # writes the released plan's loads and routes, commits the released lines, records the
  # dispatched tasks and the drivers' outcomes (and, with the local Fleet Engine stand-in, its
  # vehicles and tasks).
  table_writes = {
    "api/committed_lines"      = { service = "api", table = "committed_lines" }
    "api/dispatch_tasks"       = { service = "api", table = "dispatch_tasks" }
    "api/fleet_engine_local"   = { service = "api", table = "fleet_engine_local" }
    "api/plan_decisions"       = { service = "api", table = "plan_decisions" }
    "api/processed_events"     = { service = "api", table = "processed_events" }
    "api/released_loads"       = { service = "api", table = "released_loads" }
    "api/released_route_stops" = { service = "api", table = "released_route_stops" }
    "api/released_routes"      = { service = "api", table = "released_routes" }
  }
  topic_grants = merge([
    for s, a in local.access : { for t in a.publishes : "${s}/${t}" => { service = s, topic = t } }
  ]...)
}

# One identity per service: what a compromised step can reach is what that step needs.
resource "google_service_account" "service" {
  for_each     = local.services
  project      = var.project_id
  account_id   = "${local.prefix}-${each.key}"
  display_name = "retailopt ${each.key} service"
}

# One identity per event-driven service for the Pub/Sub push subscription and Eventarc trigger
# that call it; it may invoke that service only.
resource "google_service_account" "invoker" {
  for_each     = local.event_services
  project      = var.project_id
  account_id   = "${local.prefix}-${each.key}-push"
  display_name = "retailopt ${each.key} invoker (Pub/Sub push, Eventarc)"
}

# No predefined role reads objects and edits their metadata without also deleting and overwriting
# them (objectUser): the import service gets exactly that, granted on the raw bucket only.
resource "google_project_iam_custom_role" "raw_import" {
  project     = var.project_id
  role_id     = "${replace(local.prefix, "-", "_")}_raw_import"
  title       = "retailopt import: read raw files, mark rejected ones"
  description = "List and read the objects of the raw bucket and set metadata on them; no create, delete or overwrite."
  permissions = ["storage.objects.get", "storage.objects.list", "storage.objects.update"]
}

# The training check reads the state of the training jobs the retrain service submitted; a job's
# creator reads its own jobs, anyone else needs bigquery.jobs.get (and nothing more here: no
# predefined role has it without listing and reading every job and reservation).
resource "google_project_iam_custom_role" "training_jobs" {
  project     = var.project_id
  role_id     = "${replace(local.prefix, "-", "_")}_training_jobs"
  title       = "retailopt training check: read BigQuery job states"
  description = "Get a BigQuery job's state and error (the retrain service's CREATE MODEL jobs)."
  permissions = ["bigquery.jobs.get"]
}

resource "google_project_iam_member" "training_jobs" {
  project = var.project_id
  role    = google_project_iam_custom_role.training_jobs.name
  member  = google_service_account.service["training"].member
}

resource "google_bigquery_table_iam_member" "service" {
  for_each   = local.table_writes
  project    = var.project_id
  dataset_id = google_bigquery_dataset.default.dataset_id
  table_id   = google_bigquery_table.default[each.value.table].table_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.service[each.value.service].member
}

resource "google_project_iam_member" "job_user" {
  for_each = local.services
  project  = var.project_id
  role     = "roles/bigquery.jobUser"
  member   = google_service_account.service[each.key].member
}

resource "google_bigquery_dataset_iam_member" "service" {
  for_each   = local.access
  project    = var.project_id
  dataset_id = google_bigquery_dataset.default.dataset_id
  role       = each.value.dataset
  member     = google_service_account.service[each.key].member
}

resource "google_storage_bucket_iam_member" "service" {
  for_each = local.bucket_grants
  bucket   = google_storage_bucket.default[each.value.bucket].name
  role     = each.value.role
  member   = google_service_account.service[each.value.service].member
}

resource "google_pubsub_topic_iam_member" "service" {
  for_each = local.topic_grants
  project  = var.project_id
  topic    = google_pubsub_topic.default[each.value.topic].name
  role     = "roles/pubsub.publisher"
  member   = google_service_account.service[each.value.service].member
}

# Without a review step (settings.release_mode = "auto") the plan step releases each plan as the
# api's workbench release does: it publishes the released lines (reorders) and the dispatch
# message; its dataset role already covers the release's tables.
resource "google_pubsub_topic_iam_member" "auto_release" {
  for_each = local.auto_release ? toset(["dispatch", "reorders"]) : toset([])
  project  = var.project_id
  topic    = google_pubsub_topic.default[each.key].name
  role     = "roles/pubsub.publisher"
  member   = google_service_account.service["plan"].member
}

# Optional routing through the Route Optimization API (settings.routing_engine = "api"):
# the viewer role is enough for the synchronous OptimizeTours call.
# The plan step routes the plan; the api routes it again at release when planners' decisions
# changed the loads.
resource "google_project_iam_member" "route_optimization" {
  for_each = local.routing_api ? toset(["api", "plan"]) : toset([])
  project  = var.project_id
  role     = "roles/routeoptimization.viewer"
  member   = google_service_account.service[each.key].member
}

# Fleet Engine Deliveries (var.fleet_engine = "cloud"): the dispatch service creates delivery
# vehicles and tasks for a released plan; the api's drivers' endpoint closes tasks (and its
# POST /runs/{id}/dispatch retries a dispatch). The trusted driver role creates, updates and reads
# delivery vehicles and tasks; unlike deliveryAdmin it cannot delete any.
resource "google_project_iam_member" "fleet_engine" {
  for_each = var.fleet_engine == "cloud" ? toset(["api", "dispatch"]) : toset([])
  project  = var.project_id
  role     = "roles/fleetengine.deliveryTrustedDriver"
  member   = google_service_account.service[each.key].member
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.event_services
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.default[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.invoker[each.key].member
}

resource "google_cloud_run_v2_service_iam_member" "api" {
  for_each = toset(var.api_invokers)
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.default["api"].name
  role     = "roles/run.invoker"
  member   = each.key
}

# Eventarc delivers Cloud Storage events only to a trigger identity that may receive them.
resource "google_project_iam_member" "eventarc_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.invoker["import"].member
}

# Cloud Scheduler calls the api and the training check (only) with an OIDC token of its own identity.
resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${local.prefix}-scheduler"
  display_name = "retailopt Cloud Scheduler jobs"
}

resource "google_cloud_run_v2_service_iam_member" "scheduler" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.default["api"].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# The Scheduler also calls the training check (every few minutes; the job belongs in scheduler.tf).
resource "google_cloud_run_v2_service_iam_member" "scheduler_training" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.default["training"].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}
