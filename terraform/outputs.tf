output "api_url" {
  description = "Base URL of sessionApi (its Cloud Run URL). Usable as admin_audience when callers use this URL."
  value       = google_cloudfunctions2_function.api.service_config[0].uri
}

output "api_function_url" {
  description = "The cloudfunctions.net URL of sessionApi (an alias of api_url)."
  value       = google_cloudfunctions2_function.api.url
}

output "api_custom_url" {
  description = "sessionApi behind the load balancer, when custom_domain is set."
  value       = local.lb_enabled ? "https://${var.custom_domain}" : null
}

output "lb_ip_address" {
  description = "Address the DNS record of custom_domain must point to (A record), when custom_domain is set."
  value       = local.lb_enabled ? google_compute_global_address.api[0].address : null
}

output "kill_topic" {
  description = "Topic id that kill messages are published to (SESSION_KILL_TOPIC)."
  value       = google_pubsub_topic.kill.name
}

output "events_topic_id" {
  description = "Full resource name of the session events topic (events_topic), or null when events are off."
  value       = local.events_enabled ? google_pubsub_topic.events[0].id : null
}

output "kill_topic_id" {
  description = "Full resource name of the kill topic."
  value       = google_pubsub_topic.kill.id
}

output "kill_dead_letter_subscription" {
  description = "Pull subscription holding kill messages that failed every delivery attempt."
  value       = google_pubsub_subscription.kill_dead_letter.name
}

output "function_names" {
  description = "Deployed function per entry point."
  value = {
    sessionApi         = google_cloudfunctions2_function.api.name
    killSessionByUser  = google_cloudfunctions2_function.kill.name
    startClearSessions = google_cloudfunctions2_function.cleanup.name
  }
}

output "cleanup_job" {
  description = "Cloud Scheduler job that runs the cleanup (gcloud scheduler jobs run <this> --location <region>)."
  value       = google_cloud_scheduler_job.cleanup.name
}

output "service_accounts" {
  description = "Service account per role in this stack."
  value = {
    api       = google_service_account.api.email
    kill      = google_service_account.kill.email
    cleanup   = google_service_account.cleanup.email
    scheduler = google_service_account.scheduler.email
    push      = google_service_account.push.email
    build     = google_service_account.build.email
  }
}

output "log_digest_key" {
  description = "Key of the user digest in log lines (SESSION_LOG_DIGEST_KEY): npm run user-digest -- <user> --key \"$(terraform output -raw log_digest_key)\"."
  value       = var.log_digest_key != "" ? var.log_digest_key : random_id.log_digest_key.hex
  sensitive   = true
}

output "cleanup_url" {
  description = "URL of the cleanup function (startClearSessions), for npm run smoke -- <api_url> --cleanup-url <this>."
  value       = google_cloudfunctions2_function.cleanup.service_config[0].uri
}
