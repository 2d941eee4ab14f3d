locals {
  cleanup_service_url = google_cloudfunctions2_function.cleanup.service_config[0].uri
}

resource "google_cloud_scheduler_job" "cleanup" {
  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-cleanup"
  description = "Deletes expired sessions (startClearSessions)."
  schedule    = var.cleanup_schedule
  time_zone   = var.cleanup_time_zone

  # The longest Cloud Scheduler allows for HTTP targets, and the cleanup function's timeout.
  attempt_deadline = "1800s"

  # A run is idempotent (it only deletes what has expired), so retrying a failed one is safe.
  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
    max_doublings        = 3
  }

  http_target {
    http_method = "POST"
    uri         = local.cleanup_service_url
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.cleanup_service_url
    }
  }

  depends_on = [
    google_project_service.required,
    google_cloud_run_service_iam_binding.cleanup_invoker,
  ]
}
