locals {
  chain_id = lookup(var.settings, "chain_id", "default")
  # Scheduler sends the same body every time: the services take the run date and a fresh run id
  # from the delivery (publish time and message id), not from this static message.
  scheduler_jobs = {
    planning = {
      schedule    = var.schedules.planning
      topic       = "import"
      description = "Daily planning run: import what is in the raw bucket, forecast, plan, publish"
      message     = { schema_version = 1, kind = "start", chain_id = local.chain_id, run_id = "scheduled-planning", created_at = "2000-01-01T00:00:00Z" }
    }
    retrain = {
      schedule    = var.schedules.retrain
      topic       = "retrain"
      description = "Weekly retraining of the forecast models"
      message     = { schema_version = 1, kind = "retrain", chain_id = local.chain_id, run_id = "scheduled-retrain", created_at = "2000-01-01T00:00:00Z" }
    }
  }
}

resource "google_cloud_scheduler_job" "default" {
  for_each    = local.scheduler_jobs
  project     = var.project_id
  region      = var.region
  name        = "${local.prefix}-${each.key}"
  description = each.value.description
  schedule    = each.value.schedule
  time_zone   = var.schedules.time_zone
  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
    max_doublings        = 3
  }
  pubsub_target {
    topic_name = google_pubsub_topic.default[each.value.topic].id
    data       = base64encode(jsonencode(each.value.message))
    attributes = { kind = each.value.message.kind, origin = "scheduler" }
  }
  depends_on = [google_pubsub_topic_iam_member.scheduler]
}
