variable "approvers" {
  description = "Members (user: or group:) who may approve a pending production build (Cloud Build Approver in the CI project)."
  type        = list(string)
  nullable    = false
  validation {
    condition     = length(var.approvers) > 0 && alltrue([for m in var.approvers : can(regex("^(user|group):[^:\\s]+@[^:\\s]+$", m))])
    error_message = "approvers must name at least one user: or group: member."
  }
}

variable "branch" {
  description = "Regular expression of the branch whose pushes build staging and queue a production build for approval."
  type        = string
  default     = "^main$"
  nullable    = false
  validation {
    condition     = length(var.branch) > 0 && can(regexall(var.branch, ""))
    error_message = "branch must be a non-empty regular expression, such as ^main$."
  }
}

variable "environments" {
  description = "The staging and production deployments: project, Terraform state bucket, alert e-mail, and the service account their builds run as (it needs the deployment rights in that project only)."
  type = object({
    production = object({ alert_email = string, project_id = string, service_account = string, state_bucket = string })
    staging    = object({ alert_email = string, project_id = string, service_account = string, state_bucket = string })
  })
  nullable = false
  validation {
    condition = alltrue([for e in values(var.environments) : (
      can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", e.project_id)) &&
      can(regex("^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", e.state_bucket)) &&
      can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e.alert_email)) &&
      can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\\.iam\\.gserviceaccount\\.com$", e.service_account))
    )])
    error_message = "environments need a project id, a state bucket name, an alert e-mail and a user-managed service account e-mail (<name>@<project>.iam.gserviceaccount.com)."
  }
  validation {
    condition = (
      var.environments.staging.project_id != var.environments.production.project_id &&
      var.environments.staging.service_account != var.environments.production.service_account &&
      var.environments.staging.state_bucket != var.environments.production.state_bucket
    )
    error_message = "staging and production must differ in project, service account and state bucket: a staging build must not be able to change production."
  }
}

variable "name_prefix" {
  description = "Prefix of the deployments' names (their name_prefix) and of the triggers."
  type        = string
  default     = "retailopt"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,10}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-12 characters: lower-case letters, digits and -, starting with a letter."
  }
}

variable "project_id" {
  description = "Project that runs the builds (the triggers, their logs and approvals); may be neither deployment's."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id."
  }
}

variable "region" {
  description = "Region of the triggers (the repository connection's) and of both deployments."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1."
  }
}

variable "repository" {
  description = "Cloud Build repository (2nd gen) of this code: projects/P/locations/L/connections/C/repositories/R."
  type        = string
  validation {
    condition     = can(regex("^projects/[^/]+/locations/[a-z0-9-]+/connections/[^/]+/repositories/[^/]+$", var.repository))
    error_message = "repository must be a Cloud Build repository resource name."
  }
}
