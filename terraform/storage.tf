locals {
  # Raw files are kept for re-imports and audits, artifacts for the reports planners look back on.
  buckets = {
    artifacts = { retention_days = var.retention_days.artifacts }
    raw       = { retention_days = var.retention_days.raw }
  }
}

resource "google_storage_bucket" "default" {
  # checkov:skip=CKV_GCP_62:Access is recorded by Data Access audit logs; legacy usage logs would need a third bucket.
  for_each                    = local.buckets
  project                     = var.project_id
  name                        = "${var.project_id}-${local.prefix}-${each.key}"
  location                    = local.data_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  versioning {
    enabled = true
  }
  dynamic "encryption" {
    for_each = var.kms_key == null ? [] : [var.kms_key]
    content {
      default_kms_key_name = encryption.value
    }
  }
  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }
  lifecycle_rule {
    condition {
      age = each.value.retention_days
    }
    action {
      type = "Delete"
    }
  }
  # Overwritten or deleted objects stay recoverable for a while, then go.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.retention_days.noncurrent
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  depends_on = [google_kms_crypto_key_iam_member.agents]
}
