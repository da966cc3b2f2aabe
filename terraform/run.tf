locals {
  # One image, one service per entry point. Event-driven steps take one event at a time and must
  # answer within the 600 s Pub/Sub acknowledgement deadline (a slower answer is redelivered).
  services = {
    # The API is an ASGI function: reads of finished runs are answered from memory on the event
    # loop, so one instance takes many requests at once.
    api = {
      target      = "api", signature = "http", cpu = "1", memory = "1Gi", timeout = "300s"
      concurrency = 80, max_instances = 3, ingress = var.api_ingress
    }
    # A released plan's routes to Fleet Engine: a few hundred requests, well within a minute.
    dispatch = {
      target      = "dispatch", signature = "cloudevent", cpu = "1", memory = "1Gi", timeout = "600s"
      concurrency = 1, max_instances = 1, ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"
    }
    forecast = {
      target      = "forecast", signature = "cloudevent", cpu = "2", memory = "4Gi", timeout = "600s"
      concurrency = 1, max_instances = 2, ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"
    }
    import = {
      target      = "import_files", signature = "cloudevent", cpu = "1", memory = "2Gi", timeout = "600s"
      concurrency = 1, max_instances = 4, ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"
    }
    plan = {
      target      = "plan", signature = "cloudevent", cpu = "2", memory = "4Gi", timeout = "600s"
      concurrency = 1, max_instances = 2, ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"
    }
    # Submits the week's BigQuery ML training job and answers at once (check_trainings follows it).
    retrain = {
      target      = "retrain", signature = "cloudevent", cpu = "1", memory = "1Gi", timeout = "600s"
      concurrency = 1, max_instances = 1, ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"
    }
    # Cloud Scheduler's training check (HTTP): records how each running training ended. One check
    # at a time, so each ending is recorded, and logged, once.
    training = {
      target      = "check_trainings", signature = "http", cpu = "1", memory = "1Gi", timeout = "600s"
      concurrency = 1, max_instances = 1, ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"
    }
  }
  # Every RETAILOPT_* planning setting: the defaults generated from config.py
  # (infra/gen_settings_env.py), the caller's overrides, then what this deployment decides: the
  # cloud forecasts with BigQuery ML by default (var.forecast_engine), while the code's own
  # default (the embedded engine) stays what `retailopt run` and `serve` use.
  settings_env = merge(
    jsondecode(file("${path.module}/settings.json")),
    { for k, v in var.settings : "RETAILOPT_${upper(k)}" => v },
    {
      RETAILOPT_DATA_DIR                  = "/tmp/retailopt"
      RETAILOPT_DATASET                   = local.dataset_id
      RETAILOPT_FORECAST_ENGINE           = var.forecast_engine
      RETAILOPT_LOCATION                  = local.data_location
      RETAILOPT_PROJECT                   = var.project_id
      RETAILOPT_SERVICE_LEVEL             = var.service_level == null ? "" : tostring(var.service_level)
      RETAILOPT_SERVICE_LEVEL_BY_CATEGORY = jsonencode(var.service_level_by_category)
      RETAILOPT_WAREHOUSE                 = "bigquery"
    }
  )
  # RETAILOPT_MAX_ATTEMPTS is one delivery below Pub/Sub's limit: the service gives up (run
  # FAILED) before the event is dead-lettered. Pub/Sub's count is approximate and includes
  # deliveries the ledger does not count (a busy claim, an expired acknowledgement deadline).
  # RETAILOPT_PLANNERS: the people (user:) among var.api_invokers approve and release plans in
  # the workbench; every other caller of the api may only read.
  service_env = {
    RETAILOPT_ARTIFACTS_BUCKET = google_storage_bucket.default["artifacts"].name
    RETAILOPT_DRIVERS          = join(",", sort(var.drivers))
    RETAILOPT_EVENT_BUS        = "pubsub"
    RETAILOPT_FLEET_ENGINE     = var.fleet_engine
    RETAILOPT_MAX_ATTEMPTS     = tostring(var.max_delivery_attempts - 1)
    RETAILOPT_MAX_BODY_BYTES   = "1000000"
    RETAILOPT_MAX_EVENT_AGE_S  = "86400"
    RETAILOPT_PLANNERS         = join(",", sort([for m in var.api_invokers : split(":", m)[1] if startswith(m, "user:")]))
    RETAILOPT_PUBSUB_PROJECT   = var.project_id
    RETAILOPT_RAW_BUCKET       = google_storage_bucket.default["raw"].name
    RETAILOPT_TOPIC_PREFIX     = local.prefix
  }
  # Identities each service accepts ID tokens from, checked again in the code after Cloud Run
  # IAM: the api's planners (users and service accounts) and the Scheduler, each event-driven
  # step's own push identity, the Scheduler for the training check. The code sees only e-mails,
  # so when a group or domain may call the api the in-code check is left off there and Cloud Run
  # IAM alone decides.
  allowed_callers = merge(
    { for k in local.event_services : k => [google_service_account.invoker[k].email] },
    { training = [google_service_account.scheduler.email] },
    { api = sort(concat([for m in var.api_invokers : split(":", m)[1] if startswith(m, "user:") || startswith(m, "serviceAccount:")], [google_service_account.scheduler.email])) }
  )
  app_auth = { for k in keys(local.services) : k => k != "api" || alltrue([for m in var.api_invokers : startswith(m, "user:") || startswith(m, "serviceAccount:")]) }
}

resource "google_cloud_run_v2_service" "default" {
  for_each            = local.services
  project             = var.project_id
  location            = var.region
  name                = "${local.prefix}-${each.key}"
  description         = "retailopt ${each.key} (functions-framework target ${each.value.target})"
  ingress             = each.value.ingress
  deletion_protection = var.deletion_protection
  template {
    service_account                  = google_service_account.service[each.key].email
    timeout                          = each.value.timeout
    max_instance_request_concurrency = each.value.concurrency
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    encryption_key                   = var.kms_key
    scaling {
      min_instance_count = 0
      max_instance_count = each.value.max_instances
    }
    containers {
      image = local.image
      resources {
        limits            = { cpu = each.value.cpu, memory = each.value.memory }
        cpu_idle          = true
        startup_cpu_boost = true
      }
      env {
        name  = "FUNCTION_TARGET"
        value = each.value.target
      }
      env {
        name  = "FUNCTION_SIGNATURE_TYPE"
        value = each.value.signature
      }
      env {
        name  = "RETAILOPT_ALLOWED_CALLERS"
        value = join(",", local.allowed_callers[each.key])
      }
      env {
        name  = "RETAILOPT_AUTH_AUDIENCE"
        value = local.app_auth[each.key] ? local.service_urls[each.key] : ""
      }
      env {
        name  = "RETAILOPT_AUTH_RUN_SERVICE"
        value = local.app_auth[each.key] && contains(local.eventarc_receivers, each.key) ? "${local.prefix}-${each.key}" : ""
      }
      dynamic "env" {
        for_each = merge(local.settings_env, local.service_env)
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
  lifecycle {
    precondition {
      condition     = length(setsubtract(keys(var.settings), [for k in keys(jsondecode(file("${path.module}/settings.json"))) : lower(trimprefix(k, "RETAILOPT_"))])) == 0
      error_message = "var.settings has keys that are not fields of retailopt.config.Settings."
    }
  }
  depends_on = [google_project_service.default]
}
