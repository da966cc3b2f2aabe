locals {
  # The services write one JSON log line per step (retailopt.services.logs).
  log_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${local.prefix}-\""
  log_metrics = {
    dead_letters = {
      description = "Events given up on the delivery that reached RETAILOPT_MAX_ATTEMPTS (the run is marked FAILED)"
      filter      = "jsonPayload.outcome=\"rejected\" AND jsonPayload.reason=~\"^gave up after\""
      value       = null
      bounds      = null
    }
    failed_steps = {
      description = "Planning steps rejected for good (outcome rejected: the run, if any, is marked FAILED)"
      filter      = "jsonPayload.outcome=\"rejected\""
      value       = null
      bounds      = null
    }
    forecast_age_days = {
      description = "Age in days of the forecast a plan used"
      filter      = "jsonPayload.forecast_age_days:*"
      value       = "EXTRACT(jsonPayload.forecast_age_days)"
      bounds      = [0, 1, 2, 3, 4, 5, 7, 14, 28]
    }
    step_duration_s = {
      description = "Duration of each planning step in seconds"
      filter      = "jsonPayload.duration_s:*"
      value       = "EXTRACT(jsonPayload.duration_s)"
      bounds      = [1, 2, 5, 10, 30, 60, 120, 300, 600]
    }
    stores_at_risk = {
      description = "Stores with at least one product at stockout risk in a plan"
      filter      = "jsonPayload.kpis.stores_at_risk:*"
      value       = "EXTRACT(jsonPayload.kpis.stores_at_risk)"
      bounds      = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500]
    }
  }
  metric_type = { for k in keys(local.log_metrics) : k => "logging.googleapis.com/user/${local.prefix}_${k}" }
  # Log-based metrics are per series of (step); alerts look at the worst value in 5 minutes.
  alerts = {
    dead_letters = {
      name      = "retailopt: events dead-lettered"
      aligner   = "ALIGN_SUM"
      threshold = 0
      doc       = "An event was given up after the maximum number of deliveries. Inspect the service logs (jsonPayload.outcome=\"rejected\" AND jsonPayload.reason=~\"^gave up after\") and the *-dead-letter subscriptions, fix the cause, then republish."
    }
    failed_steps = {
      name      = "retailopt: planning step failed"
      aligner   = "ALIGN_SUM"
      threshold = 0
      doc       = "A planning step failed; the run is marked FAILED and no partial result is visible. Filter the logs on jsonPayload.run_id of the failing entry."
    }
    forecast_age_days = {
      name      = "retailopt: forecast too old"
      aligner   = "ALIGN_PERCENTILE_99"
      threshold = var.alert_thresholds.forecast_age_days
      doc       = "A plan used a forecast older than the threshold: the forecast step or the weekly retraining is not running."
    }
    stores_at_risk = {
      name      = "retailopt: stores at stockout risk"
      aligner   = "ALIGN_PERCENTILE_99"
      threshold = var.alert_thresholds.stores_at_risk
      doc       = "The latest plan leaves more stores than the threshold at stockout risk. See the stockout_risk view in BigQuery."
    }
  }
}

resource "google_logging_metric" "default" {
  for_each        = local.log_metrics
  project         = var.project_id
  name            = "${local.prefix}_${each.key}"
  description     = each.value.description
  filter          = "${local.log_filter} AND ${each.value.filter}"
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
      description = "Planning step (import, forecast, plan, publish, retrain)"
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

resource "google_monitoring_alert_policy" "log_metric" {
  for_each              = local.alerts
  project               = var.project_id
  display_name          = each.value.name
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = each.value.name
    condition_threshold {
      filter          = "metric.type=\"${local.metric_type[each.key]}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = each.value.aligner
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["metric.label.step"]
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
    content   = each.value.doc
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
          { title = "Failed steps", metric = local.metric_type.failed_steps, aligner = "ALIGN_SUM", plot = "STACKED_BAR", resource = "cloud_run_revision", group = "metric.label.step" },
          { title = "Dead-lettered events", metric = local.metric_type.dead_letters, aligner = "ALIGN_SUM", plot = "STACKED_BAR", resource = "cloud_run_revision", group = "metric.label.step" },
          { title = "Stores at stockout risk (max)", metric = local.metric_type.stores_at_risk, aligner = "ALIGN_PERCENTILE_99", plot = "LINE", resource = "cloud_run_revision", group = "metric.label.step" },
          { title = "Forecast age, days (max)", metric = local.metric_type.forecast_age_days, aligner = "ALIGN_PERCENTILE_99", plot = "LINE", resource = "cloud_run_revision", group = "metric.label.step" },
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
