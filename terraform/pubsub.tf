locals {
  # Topics are <prefix>-<name>; import, forecast, plan, retrain and dispatch (a released plan,
  # published by the api's release) are each pushed to the service of the same name; published
  # and reorders are for downstream systems (the ERP), which read them from the tables a BigQuery
  # subscription writes (sql/schema/*_messages.sql).
  topics         = ["dispatch", "forecast", "import", "plan", "published", "reorders", "retrain"]
  event_services = toset(["dispatch", "forecast", "import", "plan", "retrain"])
  erp_tables     = { published = "published_messages", reorders = "reorder_messages" }
  # Every subscription has a dead-letter topic: the push ones and the BigQuery ones.
  dead_lettered = setunion(local.event_services, keys(local.erp_tables))
  pubsub_agent  = "serviceAccount:service-${data.google_project.project.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "default" {
  for_each                   = toset(local.topics)
  project                    = var.project_id
  name                       = "${local.prefix}-${each.key}"
  kms_key_name               = var.kms_key
  message_retention_duration = "86400s"
  depends_on                 = [google_project_service.default, google_kms_crypto_key_iam_member.agents]
}

resource "google_pubsub_topic" "dead_letter" {
  for_each     = local.dead_lettered
  project      = var.project_id
  name         = "${local.prefix}-${each.key}-dead-letter"
  kms_key_name = var.kms_key
  depends_on   = [google_project_service.default, google_kms_crypto_key_iam_member.agents]
}

# Dead-lettered messages are kept a week for inspection and replay (`gcloud pubsub subscriptions pull`).
resource "google_pubsub_subscription" "dead_letter" {
  for_each                   = local.dead_lettered
  project                    = var.project_id
  name                       = "${local.prefix}-${each.key}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false
  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "push" {
  for_each                   = local.event_services
  project                    = var.project_id
  name                       = "${local.prefix}-${each.key}-push"
  topic                      = google_pubsub_topic.default[each.key].id
  ack_deadline_seconds       = 600
  message_retention_duration = "86400s"
  expiration_policy {
    ttl = ""
  }
  push_config {
    # The topic in the path lets functions-framework name the CloudEvent source.
    push_endpoint = "${google_cloud_run_v2_service.default[each.key].uri}/projects/${var.project_id}/topics/${google_pubsub_topic.default[each.key].name}"
    oidc_token {
      service_account_email = google_service_account.invoker[each.key].email
      audience              = local.service_urls[each.key]
    }
  }
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = var.max_delivery_attempts
  }
  depends_on = [
    google_cloud_run_v2_service_iam_member.invoker,
    google_pubsub_topic_iam_member.dead_letter_agent,
  ]
}

# The ERP's copy of what the plan step announces: Pub/Sub writes each message (JSON text in
# `data`, attributes, message id and publish time) into its table; a message the table refuses
# goes to the dead-letter topic after max_delivery_attempts.
resource "google_pubsub_subscription" "bigquery" {
  for_each                   = local.erp_tables
  project                    = var.project_id
  name                       = "${local.prefix}-${each.key}-bigquery"
  topic                      = google_pubsub_topic.default[each.key].id
  message_retention_duration = "604800s"
  expiration_policy {
    ttl = ""
  }
  bigquery_config {
    table          = "${google_bigquery_table.default[each.value].project}.${google_bigquery_table.default[each.value].dataset_id}.${google_bigquery_table.default[each.value].table_id}"
    write_metadata = true
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = var.max_delivery_attempts
  }
  depends_on = [
    google_bigquery_table_iam_member.pubsub_agent,
    google_pubsub_topic_iam_member.dead_letter_agent,
  ]
}

# The Pub/Sub service agent writes the BigQuery subscriptions' rows: data editor on those two
# tables only.
resource "google_bigquery_table_iam_member" "pubsub_agent" {
  for_each   = local.erp_tables
  project    = var.project_id
  dataset_id = google_bigquery_table.default[each.value].dataset_id
  table_id   = google_bigquery_table.default[each.value].table_id
  role       = "roles/bigquery.dataEditor"
  member     = local.pubsub_agent
}

# The Pub/Sub service agent forwards undeliverable messages: it publishes to the dead-letter
# topic and acknowledges on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_agent" {
  for_each = local.dead_lettered
  project  = var.project_id
  topic    = google_pubsub_topic.dead_letter[each.key].name
  role     = "roles/pubsub.publisher"
  member   = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_agent" {
  for_each     = local.dead_lettered
  project      = var.project_id
  subscription = merge(google_pubsub_subscription.push, google_pubsub_subscription.bigquery)[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
