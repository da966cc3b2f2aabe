locals {
  prefix        = var.name_prefix
  dataset_id    = replace(var.name_prefix, "-", "_")
  data_location = coalesce(var.data_location, var.region)
  image         = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.default.repository_id}/retailopt:${var.image_tag}"
  # Cloud Run's deterministic URL: known before the service exists, so a service can be told
  # its own audience without a dependency cycle.
  service_urls = {
    for k in keys(local.services) :
    k => "https://${local.prefix}-${k}-${data.google_project.project.number}.${var.region}.run.app"
  }
  apis = concat([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
    ], var.kms_key == null ? [] : ["cloudkms.googleapis.com"],
    local.routing_api ? ["routeoptimization.googleapis.com"] : [],
    var.fleet_engine == "cloud" ? ["fleetengine.googleapis.com"] : []
  )
  routing_api = lookup(var.settings, "routing_engine", "local") == "api"
  # No review step: the plan step releases each plan as planned (settings.release_mode = "auto").
  auto_release = lookup(var.settings, "release_mode", "review") == "auto"
}

data "google_project" "project" {
  project_id = var.project_id
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

resource "google_project_service" "default" {
  for_each           = toset(local.apis)
  project            = var.project_id
  service            = each.key
  disable_on_destroy = false
}

resource "google_artifact_registry_repository" "default" {
  project       = var.project_id
  location      = var.region
  repository_id = local.prefix
  format        = "DOCKER"
  description   = "retailopt service image"
  kms_key_name  = var.kms_key
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }
  depends_on = [google_project_service.default]
}
