locals {
  # The services write one JSON log line per step (retailopt.services.logs): jsonPayload.step,
  # run_id, outcome (ok, duplicate, ignored, dropped, busy, retry, rejected), reason, counts, and
  # run_status "FAILED" when a rejected step failed its run. tests/test_monitoring_contract.py
  # evaluates every filter below on the lines the handlers write.
  log_filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${local.prefix}-\""
  gave_up         = "jsonPayload.reason=~\"^gave up after [0-9]+ attempts\""
  training_failed = "jsonPayload.step=\"retrain\" AND jsonPayload.reason=~\"^training failed:\""
  # One log-match policy per kind of trouble: a rejected line is in exactly one of the four
  # failure policies, so one failure is one notification.
  log_alerts = {
    dead_letters = {
      name     = "retailopt: event given up after retries"
      severity = "ERROR"
      filter   = "jsonPayload.outcome=\"rejected\" AND ${local.gave_up}"
      doc      = "A step kept failing with a transient error until the delivery that reached RETAILOPT_MAX_ATTEMPTS gave up: the event is acknowledged and its run (if any) is FAILED. The step's earlier lines (outcome \"retry\", same jsonPayload.event_id) carry the error."
    }
    failed_runs = {
      name     = "retailopt: planning run failed"
      severity = "ERROR"
      filter   = "jsonPayload.outcome=\"rejected\" AND jsonPayload.run_status=\"FAILED\" AND NOT ${local.gave_up}"
      doc      = "A step was rejected for good (bad input, invalid overrides, no files...) and its run is FAILED with the reason in runs.error (the run_history view); no partial result is visible. The drop's file problems are in the quarantine table under the run id."
    }
    failed_steps = {
      name     = "retailopt: event rejected"
      severity = "WARNING"
      filter   = "jsonPayload.outcome=\"rejected\" AND NOT jsonPayload.run_status=\"FAILED\" AND NOT ${local.gave_up} AND NOT (${local.training_failed})"
      doc      = "An event was rejected without a run to fail: a malformed or unsupported message, an unknown run, a misplaced _READY marker, an oversized body. It is acknowledged and will not be retried."
    }
    model_age = {
      name     = "retailopt: forecast model too old"
      severity = "WARNING"
      filter   = "jsonPayload.step=\"forecast\" AND jsonPayload.counts.model_age_days>${var.alert_thresholds.model_age_days}"
      doc      = "The daily forecast used a BigQuery ML model trained more than ${var.alert_thresholds.model_age_days} days before the run: the weekly retraining has not produced a model."
    }
    stores_at_risk = {
      name     = "retailopt: stores at stockout risk after the plan"
      severity = "WARNING"
      filter   = "jsonPayload.step=\"plan\" AND jsonPayload.outcome=\"ok\" AND jsonPayload.counts.stores_at_risk_after>${var.alert_thresholds.stores_at_risk}"
      doc      = "A plan leaves more than ${var.alert_thresholds.stores_at_risk} stores with at least one product at stockout risk even after its transfers and orders (jsonPayload.counts.positions_at_risk_after positions; which ones: the stockout_risk view)."
    }
    training_failed = {
      name     = "retailopt: model training failed"
      severity = "ERROR"
      filter   = "jsonPayload.outcome=\"rejected\" AND ${local.training_failed}"
      doc      = "The weekly BigQuery ML training failed; the daily runs keep forecasting from the newest model trained before, which ages until a training succeeds."
    }
  }
  # Log-based metrics for the dashboard and the alert on missing runs.
  log_metrics = {
    completed_runs = {
      description = "Planning runs completed (the plan step published them)"
      filter      = "jsonPayload.step=\"plan\" AND jsonPayload.outcome=\"ok\""
      value       = null
      bounds      = null
    }
    dead_letters = {
      description = "Events given up on the delivery that reached RETAILOPT_MAX_ATTEMPTS (the run is marked FAILED)"
      filter      = "jsonPayload.outcome=\"rejected\" AND ${local.gave_up}"
      value       = null
      bounds      = null
    }
    failed_steps = {
      description = "Steps rejected for good (outcome rejected)"
      filter      = "jsonPayload.outcome=\"rejected\""
      value       = null
      bounds      = null
    }
    model_age_days = {
      description = "Age in days of the BigQuery ML model a forecast used"
      filter      = "jsonPayload.step=\"forecast\" AND jsonPayload.counts.model_age_days:*"
      value       = "EXTRACT(jsonPayload.counts.model_age_days)"
      bounds      = [0, 1, 2, 3, 5, 7, 8, 10, 14, 21, 28]
    }
    step_duration_s = {
      description = "Duration of each planning step in seconds"
      filter      = "jsonPayload.duration_s:*"
      value       = "EXTRACT(jsonPayload.duration_s)"
      bounds      = [1, 2, 5, 10, 30, 60, 120, 300, 600]
    }
    stores_at_risk = {
      description = "Stores with at least one product at stockout risk after a plan"
      filter      = "jsonPayload.step=\"plan\" AND jsonPayload.counts.stores_at_risk_after:*"
      value       = "EXTRACT(jsonPayload.counts.stores_at_risk_after)"
      bounds      = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500]
    }
  }
  metric_type = { for k in keys(local.log_metrics) : k => "logging.googleapis.com/user/${local.prefix}_${k}" }
  # A threshold condition looks back at most 25 h: a day's sum of completed runs that stays
  # below one for the remaining hours means none completed in the whole window.
  no_complete_run_s = var.alert_thresholds.hours_without_complete_run * 3600
}

resource "google_logging_metric" "default" {
  for_each        = local.log_metrics
  project         = var.project_id
  name            = "${local.prefix}_${each.key}"
  description     = each.value.description
  filter          = "${local.log_filter} AND (${each.value.filter})"
  value_extractor = each.value.value
  label_extractors = {
    step = "EXTRACT(jsonPayload.step)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = each.value.value == null ? "INT64" : "DISTRIBUTION"
    unit        = "1"
    labels {
      key         = "step"
      value_type  = "STRING"
      description = "Planning step (api, import, forecast, plan, retrain)"
    }
  }
  dynamic "bucket_options" {
    for_each = each.value.bounds == null ? [] : [each.value.bounds]
    content {
      explicit_buckets {
        bounds = bucket_options.value
      }
    }
  }
  depends_on = [google_project_service.default]
}

resource "google_monitoring_notification_channel" "email" {
  project      = var.project_id
  display_name = "retailopt alerts"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }
}

# One notification per matching line (at most one per 5 minutes and policy), with the run and
# the step as incident labels.
resource "google_monitoring_alert_policy" "log_match" {
  for_each              = local.log_alerts
  project               = var.project_id
  display_name          = each.value.name
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = each.value.name
    condition_matched_log {
      filter = "${local.log_filter} AND (${each.value.filter})"
      label_extractors = {
        run_id = "EXTRACT(jsonPayload.run_id)"
        step   = "EXTRACT(jsonPayload.step)"
      }
    }
  }
  alert_strategy {
    auto_close = "86400s"
    notification_rate_limit {
      period = "300s"
    }
  }
  documentation {
    content   = "${each.value.doc}\n\nLogs: `${local.log_filter} AND (${each.value.filter})`. Runbook: docs/deployment.md, \"When an alert fires\"."
    mime_type = "text/markdown"
  }
  depends_on = [google_project_service.default]
}

# No COMPLETE run for hours_without_complete_run hours: the sum of completed runs over the last
# 24 hours stays below one for the remaining hours. No data at all (nothing completed since the
# metric exists) counts as below.
resource "google_monitoring_alert_policy" "no_complete_run" {
  project               = var.project_id
  display_name          = "retailopt: no complete planning run in ${var.alert_thresholds.hours_without_complete_run} h"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "No completed run in ${var.alert_thresholds.hours_without_complete_run} h"
    condition_threshold {
      filter                  = "metric.type=\"${local.metric_type.completed_runs}\" AND resource.type=\"cloud_run_revision\""
      comparison              = "COMPARISON_LT"
      threshold_value         = 1
      duration                = "${local.no_complete_run_s - 86400}s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_ACTIVE"
      aggregations {
        alignment_period     = "86400s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }
  alert_strategy {
    auto_close = "86400s"
  }
  documentation {
    content   = "No planning run reached COMPLETE (plan step outcome ok) in ${var.alert_thresholds.hours_without_complete_run} hours: the daily schedule did not start one, or every run failed or is stuck. Runbook: docs/deployment.md, \"When an alert fires\"."
    mime_type = "text/markdown"
  }
  depends_on = [google_logging_metric.default]
}

# Messages waiting in a dead-letter subscription: Pub/Sub gave up on them.
resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  project               = var.project_id
  display_name          = "retailopt: messages in dead-letter subscriptions"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "Undelivered dead-letter messages"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=monitoring.regex.full_match(\"${local.prefix}-.*-dead-letter\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.subscription_id"]
      }
    }
  }
  documentation {
    content   = "Pub/Sub moved messages to a dead-letter topic after ${var.max_delivery_attempts} failed deliveries. Pull them with `gcloud pubsub subscriptions pull <subscription> --limit=10`, fix the cause and republish to the step's topic."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_dashboard" "default" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "retailopt planning"
    mosaicLayout = {
      columns = 12
      tiles = [
        for i, t in [
          { title = "Completed runs", metric = local.metric_type.completed_runs, aligner = "ALIGN_SUM", plot = "STACKED_BAR", resource = "cloud_run_revision", group = "metric.label.step" },
          { title = "Rejected steps", metric = local.metric_type.failed_steps, aligner = "ALIGN_SUM", plot = "STACKED_BAR", resource = "cloud_run_revision", group = "metric.label.step" },
          { title = "Events given up", metric = local.metric_type.dead_letters, aligner = "ALIGN_SUM", plot = "STACKED_BAR", resource = "cloud_run_revision", group = "metric.label.step" },
          { title = "Stores at stockout risk after the plan (max)", metric = local.metric_type.stores_at_risk, aligner = "ALIGN_PERCENTILE_99", plot = "LINE", resource = "cloud_run_revision", group = "metric.label.step" },
          { title = "Forecast model age, days (max)", metric = local.metric_type.model_age_days, aligner = "ALIGN_PERCENTILE_99", plot = "LINE", resource = "cloud_run_revision", group = "metric.label.step" },
          { title = "Step duration, s (p95)", metric = local.metric_type.step_duration_s, aligner = "ALIGN_PERCENTILE_95", plot = "LINE", resource = "cloud_run_revision", group = "metric.label.step" },
          { title = "Dead-letter backlog", metric = "pubsub.googleapis.com/subscription/num_undelivered_messages", aligner = "ALIGN_MAX", plot = "LINE", resource = "pubsub_subscription", group = "resource.label.subscription_id" },
          ] : {
          xPos   = (i % 2) * 6
          yPos   = floor(i / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = t.title
            xyChart = {
              dataSets = [{
                plotType = t.plot
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "metric.type=\"${t.metric}\" AND resource.type=\"${t.resource}\""
                    aggregation = {
                      alignmentPeriod    = "3600s"
                      perSeriesAligner   = t.aligner
                      crossSeriesReducer = "REDUCE_MAX"
                      groupByFields      = [t.group]
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })
  depends_on = [google_logging_metric.default]
}
