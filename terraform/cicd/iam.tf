locals {
  # What the production build reads of staging: the image it promotes, and which image the
  # staging services run (it deploys only what staging runs).
  production_reads_staging = ["roles/artifactregistry.reader", "roles/run.viewer"]
}

resource "google_project_iam_member" "approvers" {
  for_each = toset(var.approvers)
  project  = var.project_id
  role     = "roles/cloudbuild.builds.approver"
  member   = each.key
}

# Builds that run as a user-managed service account write their logs with its rights.
resource "google_project_iam_member" "build_logs" {
  for_each = var.environments
  project  = var.project_id
  role     = "roles/logging.logWriter"
  member   = "serviceAccount:${each.value.service_account}"
}

# The production build checks its own approval before it changes anything.
resource "google_project_iam_member" "production_build_viewer" {
  project = var.project_id
  role    = "roles/cloudbuild.builds.viewer"
  member  = "serviceAccount:${var.environments.production.service_account}"
}

resource "google_project_iam_member" "production_reads_staging" {
  for_each = toset(local.production_reads_staging)
  project  = var.environments.staging.project_id
  role     = each.key
  member   = "serviceAccount:${var.environments.production.service_account}"
}
