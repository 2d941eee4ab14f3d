# Observability as code (docs/operations.md is the runbook): log-based metrics from the lines the
# functions already write, alert policies on them and on Pub/Sub's and Cloud Scheduler's own
# metrics, a dashboard, and an uptime check on /healthz.
#
# Every filter below stays within the subset of the Logging query language that
# test/support/loggingFilter.ts evaluates; test/terraform/monitoring.test.ts runs each against the
# lines the functions emit in the tests. Keep new filters within that subset (or teach it first).

locals {
  api_service     = "${var.name_prefix}-api"
  kill_service    = "${var.name_prefix}-kill"
  cleanup_service = "${var.name_prefix}-cleanup"

  # The log line sessionApi writes per answer (functions/http/requestLog.ts): message
  # "<METHOD> <route template> <status>" ("unknown" for a path no route knows) and Cloud Logging's
  # httpRequest record. Cloud Run's own
  # request log has an httpRequest too but no jsonPayload, so the message test keeps it out.
  api_answer_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.api_service}\" AND jsonPayload.message=~\"^[A-Z]+ [^ ]+ [0-9]{3}$\" AND httpRequest.status>=100"

  log_metric_filters = {
    # Answers by status and error code. With SESSION_LOG_REQUESTS=errors (the default) only
    # answers of 400 and above are logged, so the successes are missing from this metric.
    answers = local.api_answer_filter
    # 5xx answers of sessionApi.
    server_errors = "${local.api_answer_filter} AND httpRequest.status>=500"
    # 503 store_unavailable: Datastore failed or was too slow (SESSION_STORE_TIMEOUT_MS).
    store_unavailable = "${local.api_answer_filter} AND httpRequest.status=503 AND jsonPayload.errorCode=\"store_unavailable\""
    # 403 csrf: a state-changing request without a valid security key.
    csrf_refused = "${local.api_answer_filter} AND httpRequest.status=403 AND jsonPayload.errorCode=\"csrf\""
    # Publish -> done latency of each kill (lib/jobs/kill.ts, "kill finished" with latencyMs).
    kill_latency = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.kill_service}\" AND jsonPayload.message=\"kill finished\" AND jsonPayload.latencyMs>=0"
    # Sessions one kill invocation ended (finished, or budget spent and continued).
    kill_sessions_ended = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.kill_service}\" AND jsonPayload.message=~\"^kill (finished|budget spent)$\" AND jsonPayload.deleted>=0"
    # A kill message that failed and goes back to Pub/Sub (store or publish failure).
    kill_failed = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.kill_service}\" AND jsonPayload.message=\"kill message failed; Pub/Sub will redeliver it\""
    # Sessions one cleanup pass ended: the nightly run and its continuations in the kill function.
    cleanup_sessions_ended = "resource.type=\"cloud_run_revision\" AND (resource.labels.service_name=\"${local.cleanup_service}\" OR resource.labels.service_name=\"${local.kill_service}\") AND jsonPayload.message=~\"^cleanup (finished|budget spent)$\" AND jsonPayload.deleted>=0"
    # A nightly cleanup run that ended with done: false (its budget spent; the rest continues
    # through the kill topic).
    cleanup_unfinished = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.cleanup_service}\" AND jsonPayload.message=\"cleanup budget spent\" AND jsonPayload.done=false"
    # A nightly run that failed (store) or could not hand on its rest (publish).
    cleanup_failed = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.cleanup_service}\" AND severity>=ERROR AND jsonPayload.message=~\"^(cleanup failed|could not publish the cleanup continuation)\""
    # Cloud Scheduler's own log of an attempt that failed (its status is not 2xx).
    scheduler_failed = "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=\"${local.cleanup_service}\" AND severity>=ERROR"
  }

  # Distribution metrics: the field each one records.
  log_metric_values = {
    kill_latency           = "jsonPayload.latencyMs"
    kill_sessions_ended    = "jsonPayload.deleted"
    cleanup_sessions_ended = "jsonPayload.deleted"
  }

  log_metric_units = {
    kill_latency           = "ms"
    kill_sessions_ended    = "1"
    cleanup_sessions_ended = "1"
  }

  metric_type = { for name, _ in local.log_metric_filters : name => "logging.googleapis.com/user/${var.name_prefix}/${name}" }

  alert_documentation = "Runbook: docs/operations.md in the viur-session-functions repository (stack \"${var.name_prefix}\", project ${var.project_id})."
}

resource "google_logging_metric" "counter" {
  for_each = { for name, filter in local.log_metric_filters : name => filter if !contains(keys(local.log_metric_values), name) }

  project     = var.project_id
  name        = "${var.name_prefix}/${each.key}"
  description = "viur-session-functions (${var.name_prefix}): ${each.key}; docs/operations.md#metrics"
  filter      = each.value

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    dynamic "labels" {
      for_each = each.key == "answers" ? ["status", "error_code"] : []
      content {
        key        = labels.value
        value_type = "STRING"
      }
    }
  }

  label_extractors = each.key == "answers" ? {
    status     = "EXTRACT(httpRequest.status)"
    error_code = "EXTRACT(jsonPayload.errorCode)"
  } : null

  depends_on = [google_project_service.required]
}

resource "google_logging_metric" "distribution" {
  for_each = local.log_metric_values

  project         = var.project_id
  name            = "${var.name_prefix}/${each.key}"
  description     = "viur-session-functions (${var.name_prefix}): ${each.key}; docs/operations.md#metrics"
  filter          = local.log_metric_filters[each.key]
  value_extractor = "EXTRACT(${each.value})"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = local.log_metric_units[each.key]
  }

  # 1, 2, 4, ... 2^23 (ms: up to 2.3 hours; sessions: up to 8 million per invocation).
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.required]
}

# --- Alert policies ---------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "store_unavailable" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: sessionApi answers 503 store_unavailable"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "503 store_unavailable above ${var.store_unavailable_alert_per_minute}/min"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_type.store_unavailable}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.store_unavailable_alert_per_minute / 60
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    content   = "${local.alert_documentation} Section: \"sessionApi answers 503 store_unavailable\"."
    mime_type = "text/markdown"
  }

  depends_on = [google_logging_metric.counter]
}

resource "google_monitoring_alert_policy" "server_errors" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: sessionApi answers 5xx"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "5xx answers above ${var.server_error_alert_per_minute}/min"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_type.server_errors}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.server_error_alert_per_minute / 60
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    content   = "${local.alert_documentation} Section: \"sessionApi answers 5xx\"."
    mime_type = "text/markdown"
  }

  depends_on = [google_logging_metric.counter]
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: kill messages in the dead-letter subscription"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "undelivered messages in ${google_pubsub_subscription.kill_dead_letter.name} above 0"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${google_pubsub_subscription.kill_dead_letter.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "${local.alert_documentation} Section: \"Kill messages in the dead-letter subscription\"."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "cleanup" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: the nightly cleanup fails or does not finish"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Cloud Scheduler job ${google_cloud_scheduler_job.cleanup.name} failed"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_type.scheduler_failed}\" AND resource.type=\"cloud_scheduler_job\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  conditions {
    display_name = "cleanup failed (store or continuation publish)"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_type.cleanup_failed}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  # Two nightly runs ended with done: false within 25 hours (the longest alignment period an alert
  # policy allows): two consecutive nights, the backlog outgrows one run's budget.
  conditions {
    display_name = "cleanup unfinished on consecutive nights"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_type.cleanup_unfinished}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "0s"
      aggregations {
        alignment_period     = "90000s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    content   = "${local.alert_documentation} Section: \"The nightly cleanup fails or does not finish\"."
    mime_type = "text/markdown"
  }

  depends_on = [google_logging_metric.counter]
}

resource "google_monitoring_alert_policy" "kill_latency" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: kills take longer than the revocation bound"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "95th percentile of kill publish-to-done latency above ${var.kill_latency_bound_seconds} s"
    condition_threshold {
      filter          = "metric.type=\"${local.metric_type.kill_latency}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.kill_latency_bound_seconds * 1000
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_95"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }

  documentation {
    content   = "${local.alert_documentation} Section: \"Kills take longer than the revocation bound\"."
    mime_type = "text/markdown"
  }

  depends_on = [google_logging_metric.distribution]
}

# --- Uptime check on /healthz -----------------------------------------------------------------------

locals {
  api_host = trimsuffix(trimprefix(google_cloudfunctions2_function.api.service_config[0].uri, "https://"), "/")
}

resource "google_monitoring_uptime_check_config" "healthz" {
  project      = var.project_id
  display_name = "${var.name_prefix}: sessionApi /healthz"
  timeout      = "10s"
  period       = "300s"

  http_check {
    path         = "/healthz"
    port         = 443
    use_ssl      = true
    validate_ssl = true
    accepted_response_status_codes {
      status_value = 200
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = local.api_host
    }
  }

  depends_on = [google_project_service.required]
}

resource "google_monitoring_alert_policy" "healthz" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: sessionApi /healthz fails"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "/healthz failed from more than one checker location"
    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type=\"uptime_url\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.healthz.uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "600s"
      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.host"]
      }
    }
  }

  documentation {
    content   = "${local.alert_documentation} Section: \"sessionApi /healthz fails\"."
    mime_type = "text/markdown"
  }
}

# --- Dashboard --------------------------------------------------------------------------------------

locals {
  dashboard_charts = [
    { title = "sessionApi answers logged, by status", type = local.metric_type.answers, aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = ["metric.label.status"] },
    { title = "503 store_unavailable / s", type = local.metric_type.store_unavailable, aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = [] },
    { title = "403 csrf / s", type = local.metric_type.csrf_refused, aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = [] },
    { title = "Kill publish-to-done latency, 95th percentile (ms)", type = local.metric_type.kill_latency, aligner = "ALIGN_PERCENTILE_95", reducer = "REDUCE_MAX", group_by = [] },
    { title = "Sessions ended per kill invocation, mean", type = local.metric_type.kill_sessions_ended, aligner = "ALIGN_MEAN", reducer = "REDUCE_MEAN", group_by = [] },
    { title = "Sessions ended per cleanup pass, mean", type = local.metric_type.cleanup_sessions_ended, aligner = "ALIGN_MEAN", reducer = "REDUCE_MEAN", group_by = [] },
    { title = "Cleanup runs unfinished / failed", type = local.metric_type.cleanup_unfinished, aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group_by = [] },
    { title = "Kill messages failed (redelivered)", type = local.metric_type.kill_failed, aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group_by = [] },
  ]
}

resource "google_monitoring_dashboard" "sessions" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${var.name_prefix}: viur-session-functions"
    mosaicLayout = {
      columns = 12
      tiles = concat(
        [for i, chart in local.dashboard_charts : {
          xPos   = (i % 2) * 6
          yPos   = floor(i / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = chart.title
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "metric.type=\"${chart.type}\""
                    aggregation = {
                      alignmentPeriod    = "300s"
                      perSeriesAligner   = chart.aligner
                      crossSeriesReducer = chart.reducer
                      groupByFields      = chart.group_by
                    }
                  }
                }
              }]
            }
          }
        }],
        [{
          xPos   = 0
          yPos   = ceil(length(local.dashboard_charts) / 2) * 4
          width  = 12
          height = 4
          widget = {
            title = "Kill dead-letter backlog (${google_pubsub_subscription.kill_dead_letter.name})"
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id=\"${google_pubsub_subscription.kill_dead_letter.name}\""
                    aggregation = {
                      alignmentPeriod  = "300s"
                      perSeriesAligner = "ALIGN_MAX"
                    }
                  }
                }
              }]
            }
          }
        }],
      )
    }
  })

  depends_on = [google_logging_metric.counter, google_logging_metric.distribution]
}
