locals {
  # Builds run as the environment's own service account: the staging one cannot touch production.
  build_accounts = { for k, e in var.environments : k => "projects/${var.project_id}/serviceAccounts/${e.service_account}" }
}

# Every push to the branch: tests, checks, the image, and the staging deployment (cloudbuild.yaml).
resource "google_cloudbuild_trigger" "staging" {
  project         = var.project_id
  location        = var.region
  name            = "${var.name_prefix}-staging"
  description     = "Test, check, build and deploy to staging (${var.environments.staging.project_id})"
  filename        = "cloudbuild.yaml"
  service_account = local.build_accounts.staging
  repository_event_config {
    repository = var.repository
    push {
      branch = var.branch
    }
  }
  substitutions = {
    _NAME_PREFIX             = var.name_prefix
    _REGION                  = var.region
    _STAGING_ALERT_EMAIL     = var.environments.staging.alert_email
    _STAGING_PROJECT         = var.environments.staging.project_id
    _STAGING_TF_STATE_BUCKET = var.environments.staging.state_bucket
  }
}

# The same push queues a production build that starts only when an approver approves it
# (cloudbuild.production.yaml): it promotes the image staging runs and applies production.
resource "google_cloudbuild_trigger" "production" {
  project         = var.project_id
  location        = var.region
  name            = "${var.name_prefix}-production"
  description     = "Deploy the image staging runs to production (${var.environments.production.project_id}), after approval"
  filename        = "cloudbuild.production.yaml"
  service_account = local.build_accounts.production
  approval_config {
    approval_required = true
  }
  repository_event_config {
    repository = var.repository
    push {
      branch = var.branch
    }
  }
  substitutions = {
    _NAME_PREFIX                = var.name_prefix
    _PRODUCTION_ALERT_EMAIL     = var.environments.production.alert_email
    _PRODUCTION_PROJECT         = var.environments.production.project_id
    _PRODUCTION_TF_STATE_BUCKET = var.environments.production.state_bucket
    _REGION                     = var.region
    _STAGING_PROJECT            = var.environments.staging.project_id
  }
}
