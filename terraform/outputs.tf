output "api_url" {
  description = "URL of the planners' api (the audience of their ID tokens)."
  value       = local.service_urls.api
}

output "buckets" {
  description = "Bucket names: raw (drop input files here) and artifacts (reports)."
  value       = { for k, b in google_storage_bucket.default : k => b.name }
}

output "dataset_id" {
  description = "BigQuery dataset of the warehouse."
  value       = google_bigquery_dataset.default.dataset_id
}

output "erp_tables" {
  description = "BigQuery tables (project.dataset.table) where the ERP reads what the plan step announces: published (one row per complete run) and reorders (one row per replenishment order), the message JSON in `data`."
  value       = { for k, t in local.erp_tables : k => "${var.project_id}.${google_bigquery_dataset.default.dataset_id}.${t}" }
}

output "image" {
  description = "Service image the services run."
  value       = local.image
}

output "repository" {
  description = "Artifact Registry repository for the service image."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.default.repository_id}"
}

output "service_accounts" {
  description = "Service account of each service."
  value       = { for k, sa in google_service_account.service : k => sa.email }
}

output "services" {
  description = "URL of each Cloud Run service."
  value       = { for k, s in google_cloud_run_v2_service.default : k => s.uri }
}

output "topics" {
  description = "Pub/Sub topic of each step."
  value       = { for k, t in google_pubsub_topic.default : k => t.id }
}
