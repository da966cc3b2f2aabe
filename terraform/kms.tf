locals {
  # Service agents that encrypt this deployment's data with the optional customer-managed key.
  kms_agents = var.kms_key == null ? {} : {
    artifactregistry = "serviceAccount:service-${data.google_project.project.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
    bigquery         = "serviceAccount:bq-${data.google_project.project.number}@bigquery-encryption.iam.gserviceaccount.com"
    pubsub           = local.pubsub_agent
    run              = "serviceAccount:service-${data.google_project.project.number}@serverless-robot-prod.iam.gserviceaccount.com"
    storage          = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
  }
}

resource "google_kms_crypto_key_iam_member" "agents" {
  for_each      = local.kms_agents
  crypto_key_id = var.kms_key
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value
}
