locals {
  kill_service_url = google_cloudfunctions2_function.kill.service_config[0].uri
}

resource "google_pubsub_topic" "kill" {
  project = var.project_id
  name    = local.kill_topic

  depends_on = [google_project_service.required]
}

# Messages that keep failing end here instead of being retried forever or dropped.
resource "google_pubsub_topic" "kill_dead_letter" {
  project = var.project_id
  name    = "${local.kill_topic}-dead-letter"

  depends_on = [google_project_service.required]
}

# A topic without a subscription drops what is published to it; this one keeps dead letters for
# a week so an operator can inspect them and republish to the kill topic.
resource "google_pubsub_subscription" "kill_dead_letter" {
  project = var.project_id
  name    = "${local.kill_topic}-dead-letter"
  topic   = google_pubsub_topic.kill_dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "kill_push" {
  project = var.project_id
  name    = "${local.kill_topic}-push"
  topic   = google_pubsub_topic.kill.id

  # Pub/Sub's longest; above the kill function's 540 s timeout, so a slow invocation is not
  # redelivered while it still runs.
  ack_deadline_seconds       = 600
  message_retention_duration = "604800s"

  push_config {
    # functions-framework recognises a raw Pub/Sub push by this path and hands the CloudEvent
    # function the message with its topic.
    push_endpoint = "${local.kill_service_url}/projects/${var.project_id}/topics/${google_pubsub_topic.kill.name}"

    oidc_token {
      service_account_email = google_service_account.push.email
      # Cloud Run checks the token's audience against the service URL, not the full push path.
      audience = local.kill_service_url
    }
  }

  # Transient failures (the function throws) come back with growing pauses.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.kill_dead_letter.id
    max_delivery_attempts = var.kill_max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_service_iam_binding.kill_invoker,
    google_service_account_iam_member.pubsub_agent_mints_push_tokens,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}
