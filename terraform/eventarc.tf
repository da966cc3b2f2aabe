# Object-finalized events of the raw-data bucket reach the import service as Cloud Storage
# CloudEvents. Eventarc authenticates with an OIDC token of the import invoker identity and
# retries with exponential backoff (10 s to 600 s, 24 h); Eventarc Standard has no dead-letter
# setting, so the service itself gives up on the delivery that reaches RETAILOPT_MAX_ATTEMPTS:
# it logs outcome "rejected" with reason "gave up after N attempts", which the dead-letter alert
# watches, and marks the run FAILED.
#
# Audience: an Eventarc Standard trigger has no audience setting (its Cloud Run destination is a
# service, region and path). Google documents that Cloud Run accepts, and checks before the
# request reaches the container, an aud matching one of the service's run.app URLs
# (https://cloud.google.com/run/docs/configuring/custom-audiences) and that a push token without
# a set audience is minted for the push endpoint URL
# (https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions#oidctoken), but
# not which of the service's two run.app URLs Eventarc uses. So each receiver below gets
# RETAILOPT_AUTH_RUN_SERVICE (run.tf): it accepts a token naming any run.app URL of its own
# service, with any path or query; Pub/Sub and Scheduler tokens keep their exact audience.
locals {
  eventarc_receivers = toset(["import"])
}

resource "google_eventarc_trigger" "raw_finalized" {
  project         = var.project_id
  location        = lower(local.data_location)
  name            = "${local.prefix}-raw-finalized"
  service_account = google_service_account.invoker["import"].email
  matching_criteria {
    attribute = "type"
    value     = "google.cloud.storage.object.v1.finalized"
  }
  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.default["raw"].name
  }
  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.default["import"].name
      region  = var.region
    }
  }
  depends_on = [
    google_project_iam_member.eventarc_receiver,
    google_project_iam_member.gcs_agent,
    google_cloud_run_v2_service_iam_member.invoker,
  ]
}

# Cloud Storage publishes its events through Pub/Sub: its service agent needs publish rights.
resource "google_project_iam_member" "gcs_agent" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}
