locals {
  # The chain's time zone as the services read it: settings.timezone, or config.py's default
  # (settings.json) when unset or "". The schedules run in the same zone, so "05:00" is the
  # chain's early morning all year, daylight saving included.
  chain_time_zone = lookup(var.settings, "timezone", "") != "" ? var.settings["timezone"] : jsondecode(file("${path.module}/settings.json"))["RETAILOPT_TIMEZONE"]
  # Planning and retraining call the planners' api as any planner would: the api gives each run
  # its id (one per chain and day, so a repeated call is not a second run) and publishes the start
  # message. With BigQuery ML the training check asks BigQuery every 10 minutes how the submitted
  # trainings ended (writing diagnostics for tens of thousands of series may take minutes).
  scheduler_jobs = merge({
    planning = {
      schedule    = var.schedules.planning
      service     = "api"
      path        = "/runs"
      deadline    = "60s"
      body        = { chain_id = lookup(var.settings, "chain_id", "default") }
      description = "Daily planning run: import, forecast, plan, publish"
    }
    retrain = {
      schedule    = var.schedules.retrain
      service     = "api"
      path        = "/retrain"
      deadline    = "60s"
      body        = { chain_id = lookup(var.settings, "chain_id", "default") }
      description = "Weekly retraining of the forecast models"
    }
    }, var.forecast_engine == "bigquery_ml" ? {
    training-check = {
      schedule    = "*/10 * * * *"
      service     = "training"
      path        = "/"
      deadline    = "600s"
      body        = {}
      description = "Records how each BigQuery ML training ended (model_versions, model_diagnostics)"
    }
  } : {})
}

resource "google_cloud_scheduler_job" "default" {
  for_each         = local.scheduler_jobs
  project          = var.project_id
  region           = var.region
  name             = "${local.prefix}-${each.key}"
  description      = each.value.description
  schedule         = each.value.schedule
  time_zone        = var.schedules.time_zone
  attempt_deadline = each.value.deadline
  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
    max_doublings        = 3
  }
  http_target {
    http_method = "POST"
    uri         = "${local.service_urls[each.value.service]}${each.value.path}"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode(each.value.body))
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.service_urls[each.value.service]
    }
  }
  lifecycle {
    precondition {
      condition     = var.schedules.time_zone == local.chain_time_zone
      error_message = "schedules.time_zone (${var.schedules.time_zone}) must be the chain's time zone, settings.timezone (${local.chain_time_zone}): set both to the same IANA name."
    }
  }
  depends_on = [google_project_service.default, google_cloud_run_v2_service_iam_member.scheduler,
  google_cloud_run_v2_service_iam_member.scheduler_training]
}
