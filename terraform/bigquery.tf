locals {
  # One table per DDL file in sql/schema/, generated into schemas/ by infra/gen_bq_schemas.py:
  # a new table is provisioned as soon as its generated schema is committed.
  table_meta = jsondecode(file("${path.module}/tables.json"))
  tables = {
    for f in fileset("${path.module}/schemas", "*.json") :
    trimsuffix(f, ".json") => merge(local.table_meta[trimsuffix(f, ".json")], { schema = "${path.module}/schemas/${f}" })
  }
  # Analyst views from sql/views/ (generated into views/ by the same script).
  views = {
    for f in fileset("${path.module}/views", "*.sql") :
    trimsuffix(f, ".sql") => replace(file("${path.module}/views/${f}"), "{dataset}", "${var.project_id}.${local.dataset_id}")
  }
}

resource "google_bigquery_dataset" "default" {
  project                    = var.project_id
  dataset_id                 = local.dataset_id
  friendly_name              = "retailopt"
  description                = "retailopt warehouse: inputs, planning results and run history"
  location                   = local.data_location
  delete_contents_on_destroy = !var.deletion_protection
  dynamic "default_encryption_configuration" {
    for_each = var.kms_key == null ? [] : [var.kms_key]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }
  depends_on = [google_project_service.default, google_kms_crypto_key_iam_member.agents]
}

resource "google_bigquery_table" "default" {
  for_each            = local.tables
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.default.dataset_id
  table_id            = each.key
  description         = each.value.description
  schema              = file(each.value.schema)
  clustering          = length(each.value.clustering) > 0 ? each.value.clustering : null
  deletion_protection = var.deletion_protection
  dynamic "time_partitioning" {
    for_each = each.value.partitioning == null ? [] : [each.value.partitioning]
    content {
      type          = time_partitioning.value.type
      field         = time_partitioning.value.field
      expiration_ms = try(time_partitioning.value.expiration_days * 86400000, null)
    }
  }
  dynamic "encryption_configuration" {
    for_each = var.kms_key == null ? [] : [var.kms_key]
    content {
      kms_key_name = encryption_configuration.value
    }
  }
}

resource "google_bigquery_table" "view" {
  # checkov:skip=CKV_GCP_80:A view stores no data; the tables it reads carry the encryption.
  for_each            = local.views
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.default.dataset_id
  table_id            = each.key
  description         = trimprefix(split("\n", each.value)[1], "-- ")
  deletion_protection = var.deletion_protection
  view {
    query          = each.value
    use_legacy_sql = false
  }
  depends_on = [google_bigquery_table.default]
}
