locals {
  # Every function parses the whole configuration at start-up, so all three get the same map and can
  # never disagree about the kind, the namespace or the lifetime. Local-only switches
  # (SESSION_STORE, SESSION_ADMIN_JWKS_FILE, SESSION_KILL_PUSH_URL) are deliberately absent.
  session_env_all = {
    # Set explicitly: Cloud Functions (2nd gen) does not reliably provide it, and the parser
    # refuses to start the Datastore store without it.
    GOOGLE_CLOUD_PROJECT = var.project_id

    SESSION_FORMAT = var.session_format
    SESSION_KIND   = local.kind
    # The parser accepts only [A-Za-z0-9_.-] here, so the default database is expressed by absence.
    SESSION_DATABASE         = var.database_id == "(default)" ? "" : var.database_id
    SESSION_NAMESPACE        = var.namespace
    SESSION_STORE_TIMEOUT_MS = var.store_timeout_ms
    SESSION_READ_CACHE_MS    = var.session_read_cache_ms
    SESSION_LOG_REQUESTS     = var.session_log_requests
    SESSION_LOG_USER_IDS     = var.log_user_ids
    # Not marked sensitive (random_id, not random_password): the key is in the functions'
    # environment and the state either way, and a sensitive value could not pass the filter below.
    SESSION_LOG_DIGEST_KEY = var.log_digest_key != "" ? var.log_digest_key : random_id.log_digest_key.hex

    SESSION_LIFETIME_SECONDS         = var.session_lifetime_seconds
    SESSION_REFRESH_INTERVAL_SECONDS = var.session_refresh_interval_seconds
    SESSION_COOKIE_NAME              = var.session_cookie_name
    SESSION_SAME_SITE                = var.session_same_site
    SESSION_COOKIE_PERSISTENT        = var.session_cookie_persistent
    # An empty variable would vanish from the map below and bring back the parser's default
    # ("language"); a lone comma is the parser's spelling of an empty list.
    SESSION_PERSISTENT_FIELDS_ON_LOGIN  = length(var.persistent_fields_on_login) > 0 ? join(",", var.persistent_fields_on_login) : ","
    SESSION_PERSISTENT_FIELDS_ON_LOGOUT = length(var.persistent_fields_on_logout) > 0 ? join(",", var.persistent_fields_on_logout) : ","
    SESSION_MAX_DATA_BYTES              = var.session_max_data_bytes
    SESSION_MAX_SECURITY_KEYS           = var.session_max_security_keys
    SESSION_MAX_DATA_KEYS               = var.session_max_data_keys
    SESSION_ABSOLUTE_LIFETIME_SECONDS   = var.session_absolute_lifetime_seconds
    SESSION_MAX_SESSIONS_PER_USER       = var.session_max_sessions_per_user
    SESSION_ALLOWED_ORIGINS             = join(",", var.allowed_origins)

    SESSION_ADMIN_AUDIENCE   = var.admin_audience
    SESSION_ADMIN_PRINCIPALS = join(",", var.admin_principals)

    SESSION_KILL_TOPIC             = google_pubsub_topic.kill.name
    SESSION_EVENTS_TOPIC           = var.events_topic
    SESSION_KILL_BUDGET_SECONDS    = var.kill_budget_seconds
    SESSION_VIUR_RESWEEP_SECONDS   = var.viur_resweep_seconds
    SESSION_DELETE_BATCH_SIZE      = var.delete_batch_size
    SESSION_DELETE_PARALLELISM     = var.delete_parallelism
    SESSION_CLEANUP_BUDGET_SECONDS = var.cleanup_budget_seconds
    SESSION_CLEANUP_GRACE_SECONDS  = var.cleanup_grace_seconds
  }

  # The parser treats an empty value as unset anyway; leaving it out keeps the deployed
  # configuration readable in the console.
  session_env = { for k, v in local.session_env_all : k => tostring(v) if tostring(v) != "" }

  function_source = {
    bucket = google_storage_bucket.source.name
    object = google_storage_bucket_object.source.name
  }
}

resource "google_cloudfunctions2_function" "api" {
  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-api"
  description = "Session API (sessionApi): JSON over HTTPS, public; privileged routes check Google ID tokens themselves."
  labels      = var.labels

  build_config {
    runtime         = var.nodejs_runtime
    entry_point     = "sessionApi"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = local.function_source.bucket
        object = local.function_source.object
      }
    }
  }

  service_config {
    service_account_email = google_service_account.api.email
    environment_variables = local.session_env
    timeout_seconds       = 60
    available_memory      = var.api_memory
    # Concurrency above 1 needs a whole CPU; the API mostly waits on Datastore, so one instance
    # serves many requests.
    available_cpu                    = "1"
    max_instance_request_concurrency = var.api_concurrency
    min_instance_count               = var.api_min_instances
    max_instance_count               = var.api_max_instances
    # Browsers call it directly (or through the optional load balancer / Firebase Hosting, which
    # reach it from outside any VPC as well).
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
  }

  depends_on = [
    google_project_service.required,
    google_project_iam_member.build_run_builder,
    time_sleep.iam_propagation,
    google_project_iam_member.api_datastore,
    # The device routes and the session cap query it: the API's new revision goes live once it is built.
    google_firestore_index.live_by_user,
  ]
}

resource "google_cloudfunctions2_function" "kill" {
  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-kill"
  description = "killSessionByUser: deletes the sessions named by kill messages, delivered by the push subscription ${local.kill_topic}-push."
  labels      = var.labels

  # No event_trigger: the subscription an Eventarc trigger creates cannot take a dead-letter
  # policy, so pubsub.tf pushes to this service with a subscription of its own. functions-framework
  # turns that raw push request into a CloudEvent because the push path names the topic.
  build_config {
    runtime         = var.nodejs_runtime
    entry_point     = "killSessionByUser"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = local.function_source.bucket
        object = local.function_source.object
      }
    }
  }

  service_config {
    service_account_email = google_service_account.kill.email
    environment_variables = local.session_env
    # Longest allowed for an event-driven function and below the push ack deadline (600 s); the
    # kill budget stops well before it and continues in a follow-up message.
    timeout_seconds                  = 540
    available_memory                 = var.worker_memory
    max_instance_request_concurrency = 1
    min_instance_count               = 0
    max_instance_count               = var.kill_max_instances
    # Pub/Sub push comes from Google's front end, not from a VPC; the invoker binding is the guard.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
  }

  depends_on = [
    google_project_service.required,
    google_project_iam_member.build_run_builder,
    time_sleep.iam_propagation,
    google_project_iam_member.kill_datastore,
  ]
}

resource "google_cloudfunctions2_function" "cleanup" {
  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-cleanup"
  description = "startClearSessions: deletes expired sessions in batches; called by Cloud Scheduler with an OIDC token."
  labels      = var.labels

  build_config {
    runtime         = var.nodejs_runtime
    entry_point     = "startClearSessions"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = local.function_source.bucket
        object = local.function_source.object
      }
    }
  }

  service_config {
    service_account_email = google_service_account.cleanup.email
    environment_variables = local.session_env
    # Matches the scheduler's longest attempt deadline; the cleanup budget ends the run earlier.
    timeout_seconds                  = 1800
    available_memory                 = var.worker_memory
    max_instance_request_concurrency = 1
    min_instance_count               = 0
    # One run at a time: a backlog continues through the kill topic, not through parallel runs.
    max_instance_count = 1
    # Cloud Scheduler calls from outside any VPC; the invoker binding is the guard.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
  }

  depends_on = [
    google_project_service.required,
    google_project_iam_member.build_run_builder,
    time_sleep.iam_propagation,
    google_project_iam_member.cleanup_datastore,
  ]
}

# The key of the user digest in log lines (SESSION_LOG_DIGEST_KEY) when var.log_digest_key is empty:
# generated once, kept in the state; docs/operations.md says how to read it back.
resource "random_id" "log_digest_key" {
  byte_length = 32
}
