variable "alert_email" {
  description = "E-mail address that receives the monitoring alerts."
  type        = string
  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an e-mail address."
  }
}

variable "alert_thresholds" {
  description = "Alert when no run completes for this many hours (25-47), when a forecast uses a model older than this many days, or when a plan leaves more stores than this at stockout risk (after its transfers and orders)."
  type = object({
    hours_without_complete_run = optional(number, 26)
    model_age_days             = optional(number, 8)
    stores_at_risk             = optional(number, 5)
  })
  default  = {}
  nullable = false
  validation {
    condition     = alltrue([for v in values(var.alert_thresholds) : v == floor(v)])
    error_message = "alert_thresholds must be whole numbers."
  }
  validation {
    condition     = var.alert_thresholds.hours_without_complete_run >= 25 && var.alert_thresholds.hours_without_complete_run <= 47
    error_message = "alert_thresholds.hours_without_complete_run must be 25-47: a daily run plus slack, within what one alert condition can look back (24 h and a retest window under 24 h)."
  }
  validation {
    condition     = var.alert_thresholds.model_age_days >= 1 && var.alert_thresholds.model_age_days <= 365
    error_message = "alert_thresholds.model_age_days must be 1-365 (the model is retrained weekly: 8 allows one late retraining day)."
  }
  validation {
    condition     = var.alert_thresholds.stores_at_risk >= 0 && var.alert_thresholds.stores_at_risk <= 1000000
    error_message = "alert_thresholds.stores_at_risk must be 0-1000000 stores (0 alerts on any store at risk, which most plans leave)."
  }
}

variable "api_ingress" {
  description = "Ingress of the planners' api service; the event-driven services are always internal."
  type        = string
  default     = "INGRESS_TRAFFIC_ALL"
  validation {
    condition     = contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "INGRESS_TRAFFIC_INTERNAL_ONLY"], var.api_ingress)
    error_message = "api_ingress must be INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER or INGRESS_TRAFFIC_INTERNAL_ONLY."
  }
}

variable "api_invokers" {
  description = "IAM members (user:, group:, serviceAccount:, domain:) of the planners who may call the api with an ID token."
  type        = list(string)
  default     = []
  nullable    = false
  validation {
    condition     = alltrue([for m in var.api_invokers : can(regex("^(user|group|serviceAccount|domain):[^:\\s]+$", m))])
    error_message = "api_invokers entries must be user:, group:, serviceAccount: or domain: members (never allUsers or allAuthenticatedUsers)."
  }
}

variable "data_location" {
  description = "Location of the BigQuery dataset and the buckets (a region or US/EU); null means var.region."
  type        = string
  default     = null
  validation {
    condition     = var.data_location == null || can(regex("^(US|EU|[a-z]+-[a-z]+[0-9])$", var.data_location))
    error_message = "data_location must be US, EU or a region such as europe-west1."
  }
}

variable "deletion_protection" {
  description = "Protect the dataset, tables, buckets and services from terraform destroy; set false before tearing down."
  type        = bool
  default     = true
  nullable    = false
}

variable "drivers" {
  description = "E-mails of the drivers (or the service account of their dispatch app) who may record delivery outcomes through the api (POST /tasks/{id}/outcome); planners may too."
  type        = list(string)
  default     = []
  nullable    = false
  validation {
    condition     = alltrue([for d in var.drivers : can(regex("^[^@\\s,]+@[^@\\s,]+$", d))])
    error_message = "drivers entries must be e-mail addresses."
  }
}

variable "fleet_engine" {
  description = "Where released routes are dispatched: \"cloud\" (Fleet Engine Deliveries of the project, Last Mile Fleet Solution enabled) or \"local\" (the stand-in kept in the warehouse)."
  type        = string
  default     = "local"
  nullable    = false
  validation {
    condition     = contains(["local", "cloud"], var.fleet_engine)
    error_message = "fleet_engine must be local or cloud."
  }
}

variable "forecast_engine" {
  description = "Forecasting engine of the services: bigquery_ml (ARIMA_PLUS, or ARIMA_PLUS_XREG where the chain plans promotions, trained weekly in BigQuery) or local (the embedded engine, fitted in every run)."
  type        = string
  default     = "bigquery_ml"
  nullable    = false
  validation {
    condition     = contains(["bigquery_ml", "local"], var.forecast_engine)
    error_message = "forecast_engine must be bigquery_ml or local."
  }
}

variable "image_tag" {
  description = "Tag of the retailopt image in this deployment's Artifact Registry repository (Cloud Build passes the build id)."
  type        = string
  default     = "latest"
  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid Docker tag."
  }
}

variable "kms_key" {
  description = "Optional Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for the dataset, buckets, topics, registry and services; null uses Google-managed keys."
  type        = string
  default     = null
  validation {
    condition     = var.kms_key == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms_key))
    error_message = "kms_key must be a full crypto key id."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries of one event before Pub/Sub sends it to the dead-letter topic; the services give up one delivery earlier (RETAILOPT_MAX_ATTEMPTS = this - 1) and mark the run FAILED."
  type        = number
  default     = 5
  nullable    = false
  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub limits)."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (services, topics, buckets, service accounts); the dataset is the prefix with _ for -."
  type        = string
  default     = "retailopt"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,10}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-12 characters: lower-case letters, digits and -, starting with a letter."
  }
}

variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id."
  }
}

variable "region" {
  description = "Region of the Cloud Run services, Scheduler jobs and Artifact Registry repository."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1."
  }
}

variable "retention_days" {
  description = "Days to keep raw input files, run artifacts, and overwritten or deleted object versions."
  type = object({
    artifacts  = optional(number, 365)
    noncurrent = optional(number, 30)
    raw        = optional(number, 180)
  })
  default  = {}
  nullable = false
  validation {
    condition     = alltrue([for v in [var.retention_days.artifacts, var.retention_days.raw] : v >= 31 && v == floor(v)])
    error_message = "retention_days.artifacts and retention_days.raw must be whole numbers of at least 31 days (objects move to Nearline after 30)."
  }
  validation {
    condition     = var.retention_days.noncurrent >= 1 && var.retention_days.noncurrent == floor(var.retention_days.noncurrent)
    error_message = "retention_days.noncurrent must be a whole number of days, at least 1."
  }
}

variable "schedules" {
  description = "Cron schedules of the daily planning run and the weekly retraining, in the chain's IANA time zone (the same as settings.timezone): planning early in the local morning, retraining at a quiet hour that every day has (not 02:00, which US daylight saving skips or repeats)."
  type = object({
    planning  = optional(string, "0 5 * * *")
    retrain   = optional(string, "0 3 * * 0")
    time_zone = optional(string, "America/Chicago")
  })
  default  = {}
  nullable = false
  validation {
    condition     = alltrue([for s in [var.schedules.planning, var.schedules.retrain] : length(split(" ", trimspace(s))) == 5])
    error_message = "schedules.planning and schedules.retrain must be 5-field cron expressions."
  }
  validation {
    condition     = can(regex("^(UTC|Etc/(UTC|GMT([+-]([0-9]|1[0-4]))?)|[A-Z][A-Za-z]+(/[A-Z][A-Za-z0-9_+-]+){1,2})$", var.schedules.time_zone))
    error_message = "schedules.time_zone must be an IANA time zone name such as America/Chicago, Europe/Paris or UTC."
  }
}

variable "service_level" {
  description = "The chain's target service level (probability of no stockout per replenishment cycle; class targets derive from it). null (the default): each product's target comes from its costs, margin / (margin + holding over a review period), within settings cost_service_level_min..max."
  type        = number
  default     = null
  nullable    = true
  validation {
    condition     = var.service_level == null ? true : (var.service_level >= local.setting_bounds.service_level.min && var.service_level < local.setting_bounds.service_level.max)
    error_message = "service_level must be null or in ${local.setting_bounds.service_level.min}..<${local.setting_bounds.service_level.max}."
  }
}

variable "service_level_by_category" {
  description = "Service level per product category, overriding service_level."
  type        = map(number)
  default     = {}
  nullable    = false
  validation {
    condition     = alltrue([for v in values(var.service_level_by_category) : v >= local.setting_bounds.service_level_by_category.min && v < local.setting_bounds.service_level_by_category.max])
    error_message = "service_level_by_category values must be in ${local.setting_bounds.service_level_by_category.min}..<${local.setting_bounds.service_level_by_category.max}."
  }
}

variable "settings" {
  description = "Other planning settings (fields of retailopt.config.Settings, lower case, as strings), e.g. { horizon_days = \"35\" }."
  type        = map(string)
  default     = {}
  nullable    = false
  validation {
    condition     = length(setintersection(keys(var.settings), ["data_dir", "dataset", "forecast_engine", "location", "project", "service_level", "service_level_by_category", "warehouse"])) == 0
    error_message = "settings must not set data_dir, dataset, location, project, warehouse (decided by this deployment), forecast_engine or the service levels (use their variables)."
  }
  # Numbers as retailopt.config reads them: finite, within local.setting_bounds (settings.tf),
  # whole where the setting is an integer; "" leaves the code's default.
  validation {
    condition = alltrue([
      for k, v in var.settings : try(alltrue([
        for n in(local.setting_bounds[k].mapping ? [for x in values(jsondecode(v)) : tonumber(x)] : [tonumber(v)]) : (
          (local.setting_bounds[k].min_exclusive ? n > local.setting_bounds[k].min : n >= local.setting_bounds[k].min) &&
          (local.setting_bounds[k].max_exclusive ? n < local.setting_bounds[k].max : n <= local.setting_bounds[k].max) &&
          (!local.setting_bounds[k].integer || floor(n) == n)
        )
      ]), false) if contains(keys(local.setting_bounds), k) && v != ""
    ])
    error_message = "numeric settings must be finite numbers within their bounds (whole numbers for integer settings; for a mapping, a JSON object of such numbers): ${join(", ", [for k, b in local.setting_bounds : "${k} ${b.min}${b.min_exclusive ? "<" : ""}..${b.max_exclusive ? "<" : ""}${b.max}" if contains(keys(var.settings), k)])}."
  }
  # The data frequency as retailopt.config reads it (forecasting/frequency.py); in the cloud it
  # sets ARIMA_PLUS's data_frequency and the training's gap-filling grid.
  validation {
    condition     = can(regex("^(|auto|daily|weekly|monthly|quarterly|D|W|W-(MON|TUE|WED|THU|FRI|SAT|SUN)|MS|ME|QS|QE)$", lookup(var.settings, "data_frequency", "")))
    error_message = "settings.data_frequency must be auto, daily, weekly, monthly, quarterly or a pandas alias (D, W-FRI, MS, ME, QS, QE)."
  }
  # "auto": no review step, the plan step releases each plan as planned (iam.tf grants it the
  # release's topics); "review" (the default): planners release it in the workbench.
  validation {
    condition     = contains(["", "review", "auto"], lookup(var.settings, "release_mode", ""))
    error_message = "settings.release_mode must be review or auto."
  }
}
