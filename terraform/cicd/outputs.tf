output "triggers" {
  description = "Build triggers: staging (every push) and production (every push, pending until approved)."
  value = {
    production = google_cloudbuild_trigger.production.name
    staging    = google_cloudbuild_trigger.staging.name
  }
}
