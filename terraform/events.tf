# Session events (docs/events.md), when events_topic is set: the topic, and publish rights on it for
# the three functions' own service accounts, nothing else (subscribers bring their own subscription
# and roles/pubsub.subscriber on it). The functions publish to it at run time only, so they need not
# wait for it: an event published before the topic or the grant exists stays in the outbox and is
# published by a later relay.

locals {
  events_enabled = var.events_topic != ""
  # Every function records events: the API for requests, the kill function for kills, the cleanup
  # for expired sessions (and its relay of what requests left behind).
  events_publishers = local.events_enabled ? {
    api     = google_service_account.api.email
    kill    = google_service_account.kill.email
    cleanup = google_service_account.cleanup.email
  } : {}
}

resource "google_pubsub_topic" "events" {
  count = local.events_enabled ? 1 : 0

  project = var.project_id
  name    = var.events_topic
  labels  = var.labels

  depends_on = [google_project_service.required]
}

resource "google_pubsub_topic_iam_member" "events_publisher" {
  for_each = local.events_publishers

  project = var.project_id
  topic   = google_pubsub_topic.events[0].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${each.value}"
}
