# Defaults mirror the settings table of lib/setup/settings.ts (test/terraform/terraform.test.ts checks that
# the environment these defaults produce parses to exactly the parser's own defaults).

# --- Where ------------------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project id to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 characters: lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the functions, the scheduler job and the source bucket."
  type        = string
  default     = "europe-west1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, service accounts, scheduler job, bucket, kill topic and subscriptions, kind and its indexes, log-based metrics, alert policies, dashboard, uptime check), so that two stacks (staging, prod) share a project without colliding. The default keeps the names a stack had before the prefix covered all of them."
  type        = string
  default     = "session"

  validation {
    # Service account ids are 6-30 characters; the longest suffix used is "-scheduler".
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-20 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels put on the functions and the source bucket."
  type        = map(string)
  default     = {}
}

variable "source_bucket_name" {
  description = "Bucket that holds the uploaded function source; empty means \"<project_id>-<name_prefix>-source\"."
  type        = string
  default     = ""
}

# --- Firestore in Datastore mode --------------------------------------------------------------------

variable "create_database" {
  description = "Create the Firestore database (Datastore mode). Leave false when the project already has one."
  type        = bool
  default     = false
}

variable "database_id" {
  description = "Firestore database id in Datastore mode; \"(default)\" is the project's default database."
  type        = string
  default     = "(default)"

  validation {
    condition     = var.database_id == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.database_id))
    error_message = "database_id must be \"(default)\" or a Firestore database id (4-63 characters: lowercase letters, digits, hyphens)."
  }
}

variable "database_location" {
  description = "Location of the database when create_database is true (a region or a multi-region such as eur3 or nam5); empty means var.region."
  type        = string
  default     = ""
}

variable "session_format" {
  description = "Entity shape of the sessions (SESSION_FORMAT): native, or viur to serve a ViUR 3.8 app's own sessions (docs/viur.md). In viur format no TTL policy is created: ViUR's lastseen is a double, which a TTL policy cannot act on."
  type        = string
  default     = "native"

  validation {
    condition     = contains(["native", "viur"], var.session_format)
    error_message = "session_format must be native or viur."
  }
}

variable "kind" {
  description = "Datastore kind of the session entities (SESSION_KIND); empty means \"viur-session\" with the default name_prefix and \"<name_prefix>-session\" with any other (local.kind)."
  type        = string
  default     = ""

  validation {
    condition     = var.kind == "" || can(regex("^[A-Za-z0-9_.-]+$", var.kind))
    error_message = "kind may contain only letters, digits, _ . -"
  }
}

variable "namespace" {
  description = "Datastore namespace of the sessions (SESSION_NAMESPACE); empty is the default namespace."
  type        = string
  default     = ""

  validation {
    condition     = var.namespace == "" || can(regex("^[A-Za-z0-9_.-]+$", var.namespace))
    error_message = "namespace may contain only letters, digits, _ . -"
  }
}

variable "store_timeout_ms" {
  description = "Deadline of each Datastore call in milliseconds (SESSION_STORE_TIMEOUT_MS)."
  type        = number
  default     = 5000

  validation {
    condition     = var.store_timeout_ms >= 100 && var.store_timeout_ms <= 600000 && floor(var.store_timeout_ms) == var.store_timeout_ms
    error_message = "store_timeout_ms must be an integer from 100 to 600000."
  }
}

# --- Sessions and cookies ---------------------------------------------------------------------------

variable "session_lifetime_seconds" {
  description = "Idle lifetime of a session (SESSION_LIFETIME_SECONDS)."
  type        = number
  default     = 3600

  validation {
    condition     = var.session_lifetime_seconds >= 1 && var.session_lifetime_seconds <= 31622400 && floor(var.session_lifetime_seconds) == var.session_lifetime_seconds
    error_message = "session_lifetime_seconds must be an integer from 1 to 31622400 (366 days)."
  }
}

variable "session_refresh_interval_seconds" {
  description = "How old lastseen may get before a read rewrites the session (SESSION_REFRESH_INTERVAL_SECONDS)."
  type        = number
  default     = 300

  validation {
    condition     = var.session_refresh_interval_seconds >= 0 && var.session_refresh_interval_seconds <= 86400 && floor(var.session_refresh_interval_seconds) == var.session_refresh_interval_seconds
    error_message = "session_refresh_interval_seconds must be an integer from 0 to 86400."
  }
}

variable "session_cookie_name" {
  description = "Session cookie name (SESSION_COOKIE_NAME); empty leaves it to the configuration parser's default (lib/setup/config.ts), `__Host-viur_cookie_<project id>`. Behind Firebase Hosting it must be \"__session\" (Hosting forwards no other cookie)."
  type        = string
  default     = ""
}

variable "session_same_site" {
  description = "SameSite attribute of the cookie (SESSION_SAME_SITE): lax, strict, none or off."
  type        = string
  default     = "lax"

  validation {
    condition     = contains(["lax", "strict", "none", "off"], var.session_same_site)
    error_message = "session_same_site must be one of lax, strict, none, off."
  }
}

variable "session_cookie_persistent" {
  description = "true: the cookie gets Max-Age = lifetime and survives the browser session (SESSION_COOKIE_PERSISTENT)."
  type        = bool
  default     = false
}

variable "persistent_fields_on_login" {
  description = "Session keys kept across login (SESSION_PERSISTENT_FIELDS_ON_LOGIN)."
  type        = list(string)
  default     = ["language"]
}

variable "persistent_fields_on_logout" {
  description = "Session keys kept across logout (SESSION_PERSISTENT_FIELDS_ON_LOGOUT)."
  type        = list(string)
  default     = ["language"]
}

variable "session_max_data_bytes" {
  description = "Limit on the stored session data in bytes (SESSION_MAX_DATA_BYTES); must stay below Datastore's 1 MiB entity limit."
  type        = number
  default     = 786432

  validation {
    condition     = var.session_max_data_bytes >= 1024 && var.session_max_data_bytes <= 1000000 && floor(var.session_max_data_bytes) == var.session_max_data_bytes
    error_message = "session_max_data_bytes must be an integer from 1024 to 1000000."
  }
}

variable "session_max_security_keys" {
  description = "One-time security keys valid at once per session (SESSION_MAX_SECURITY_KEYS)."
  type        = number
  default     = 16

  validation {
    condition     = var.session_max_security_keys >= 1 && var.session_max_security_keys <= 100 && floor(var.session_max_security_keys) == var.session_max_security_keys
    error_message = "session_max_security_keys must be an integer from 1 to 100."
  }
}

variable "session_absolute_lifetime_seconds" {
  description = "A session ends this long after its creation, however often it is used (SESSION_ABSOLUTE_LIFETIME_SECONDS); 0 disables the limit."
  type        = number
  default     = 604800

  validation {
    condition     = var.session_absolute_lifetime_seconds >= 0 && var.session_absolute_lifetime_seconds <= 31622400 && floor(var.session_absolute_lifetime_seconds) == var.session_absolute_lifetime_seconds
    error_message = "session_absolute_lifetime_seconds must be an integer from 0 to 31622400 (366 days)."
  }
}

variable "session_max_data_keys" {
  description = "Most keys the data of one session may hold (SESSION_MAX_DATA_KEYS)."
  type        = number
  default     = 10000

  validation {
    condition     = var.session_max_data_keys >= 1 && var.session_max_data_keys <= 100000 && floor(var.session_max_data_keys) == var.session_max_data_keys
    error_message = "session_max_data_keys must be an integer from 1 to 100000."
  }
}

variable "session_max_sessions_per_user" {
  description = "Sessions one user may have at once; at login the least recently used beyond it end, a sign-in counting as use for a minute (SESSION_MAX_SESSIONS_PER_USER). 0: no limit."
  type        = number
  default     = 0

  validation {
    condition     = var.session_max_sessions_per_user >= 0 && var.session_max_sessions_per_user <= 10000 && floor(var.session_max_sessions_per_user) == var.session_max_sessions_per_user
    error_message = "session_max_sessions_per_user must be an integer from 0 to 10000."
  }
}

variable "session_read_cache_ms" {
  description = "How stale a session read from the per-instance read cache may be, in milliseconds (SESSION_READ_CACHE_MS). 0: no cache."
  type        = number
  default     = 0

  validation {
    condition     = var.session_read_cache_ms >= 0 && var.session_read_cache_ms <= 60000 && floor(var.session_read_cache_ms) == var.session_read_cache_ms
    error_message = "session_read_cache_ms must be an integer from 0 to 60000."
  }
}

variable "session_log_requests" {
  description = "Which sessionApi requests get a log line of their own (SESSION_LOG_REQUESTS): errors (status 400 and above) or all. Cloud Run's request log has every request either way."
  type        = string
  default     = "errors"

  validation {
    condition     = contains(["errors", "all"], var.session_log_requests)
    error_message = "session_log_requests must be errors or all."
  }
}

variable "log_user_ids" {
  description = "How kill log lines name a user (SESSION_LOG_USER_IDS): digest (a keyed HMAC-SHA-256 digest, the default) or raw (the user id itself; opt-in, ids are often e-mail addresses)."
  type        = string
  default     = "digest"

  validation {
    condition     = contains(["digest", "raw"], var.log_user_ids)
    error_message = "log_user_ids must be digest or raw."
  }
}

variable "log_digest_key" {
  description = "Key of the user digest in log lines (SESSION_LOG_DIGEST_KEY); empty means a random 256-bit key Terraform generates once and keeps in its state (random_id.log_digest_key). Set it to keep digests stable across stacks or a re-created state."
  type        = string
  default     = ""
}

variable "allowed_origins" {
  description = "Origins (https://host[:port]) allowed to change sessions cross-site (SESSION_ALLOWED_ORIGINS)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.allowed_origins : can(regex("^https?://[^/\\s,]+$", o))])
    error_message = "allowed_origins must be origins such as https://www.example.com (no path, no comma)."
  }
}

# --- Privileged routes ------------------------------------------------------------------------------

variable "admin_principals" {
  description = "Service-account emails allowed on the privileged routes (login, kill) of sessionApi (SESSION_ADMIN_PRINCIPALS). Empty: nobody."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.admin_principals : can(regex("^[^@,\\s]+@[^@,\\s]+$", p))])
    error_message = "admin_principals must be plain email addresses (no \"serviceAccount:\" prefix)."
  }
}

variable "admin_audience" {
  description = "Expected audience of privileged ID tokens (SESSION_ADMIN_AUDIENCE): the URL callers use, e.g. https://<region>-<project>.cloudfunctions.net/<name_prefix>-api (api_function_url). Required when admin_principals is not empty; never taken from the request."
  type        = string
  default     = ""
}

# --- Kill messages ----------------------------------------------------------------------------------

variable "kill_topic" {
  description = "Pub/Sub topic id of kill messages (SESSION_KILL_TOPIC); empty means \"<name_prefix>-kill\" (local.kill_topic), \"session-kill\" with the default prefix."
  type        = string
  default     = ""

  validation {
    condition     = var.kill_topic == "" || can(regex("^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", var.kill_topic)) && !startswith(lower(var.kill_topic), "goog")
    error_message = "kill_topic must be a Pub/Sub topic id (3-255 characters, starting with a letter, not with \"goog\")."
  }
}

variable "kill_publishers" {
  description = "Further principals (\"serviceAccount:x@p.iam.gserviceaccount.com\", \"group:...\", \"user:...\") allowed to publish kill messages, for example the backend that changes passwords."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.kill_publishers : can(regex("^(serviceAccount|user|group|domain|principal|principalSet):.+$", p))])
    error_message = "kill_publishers must be IAM principals with a type prefix such as serviceAccount:."
  }
}

variable "kill_max_delivery_attempts" {
  description = "Deliveries of one kill message before it is moved to the dead-letter topic."
  type        = number
  default     = 10

  validation {
    condition     = var.kill_max_delivery_attempts >= 5 && var.kill_max_delivery_attempts <= 100
    error_message = "Pub/Sub allows 5 to 100 delivery attempts."
  }
}

variable "kill_budget_seconds" {
  description = "Time one kill invocation may take before it continues in a follow-up message (SESSION_KILL_BUDGET_SECONDS)."
  type        = number
  default     = 240

  validation {
    # The kill function times out at 540 s; the budget leaves room to publish the continuation.
    condition     = var.kill_budget_seconds >= 1 && var.kill_budget_seconds <= 480 && floor(var.kill_budget_seconds) == var.kill_budget_seconds
    error_message = "kill_budget_seconds must be an integer from 1 to 480 (the function's timeout is 540 s)."
  }
}

# --- Session events ---------------------------------------------------------------------------------

variable "events_topic" {
  description = "Pub/Sub topic id session events are published to (SESSION_EVENTS_TOPIC, docs/events.md); created by this stack, with publish rights for the three functions only. Empty (the default): no events, and nothing of the outbox is written or read. native format only: in viur format the functions refuse to start with it."
  type        = string
  default     = ""

  validation {
    condition     = var.events_topic == "" || (can(regex("^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", var.events_topic)) && !startswith(lower(var.events_topic), "goog"))
    error_message = "events_topic must be empty or a Pub/Sub topic id (3-255 characters, starting with a letter, not with \"goog\")."
  }
}

variable "viur_resweep_seconds" {
  description = "session_format = viur: seconds after a kill until a second sweep deletes the killed sessions a ViUR request wrote back; longer than any request of the app can run (SESSION_VIUR_RESWEEP_SECONDS)."
  type        = number
  default     = 660

  validation {
    condition     = var.viur_resweep_seconds >= 0 && var.viur_resweep_seconds <= 86400 && floor(var.viur_resweep_seconds) == var.viur_resweep_seconds
    error_message = "viur_resweep_seconds must be an integer from 0 to 86400."
  }
}

# --- Deletion (kill and cleanup) --------------------------------------------------------------------

variable "delete_batch_size" {
  description = "Keys per delete commit (SESSION_DELETE_BATCH_SIZE); Datastore allows at most 500."
  type        = number
  default     = 500

  validation {
    condition     = var.delete_batch_size >= 1 && var.delete_batch_size <= 500 && floor(var.delete_batch_size) == var.delete_batch_size
    error_message = "delete_batch_size must be an integer from 1 to 500."
  }
}

variable "delete_parallelism" {
  description = "Delete commits in flight at once (SESSION_DELETE_PARALLELISM)."
  type        = number
  default     = 4

  validation {
    condition     = var.delete_parallelism >= 1 && var.delete_parallelism <= 32 && floor(var.delete_parallelism) == var.delete_parallelism
    error_message = "delete_parallelism must be an integer from 1 to 32."
  }
}

variable "cleanup_budget_seconds" {
  description = "Time one cleanup run may take (SESSION_CLEANUP_BUDGET_SECONDS); the rest continues through the kill topic."
  type        = number
  default     = 1200

  validation {
    # Both the cleanup function's timeout and the scheduler's attempt deadline are 1800 s.
    condition     = var.cleanup_budget_seconds >= 1 && var.cleanup_budget_seconds <= 1700 && floor(var.cleanup_budget_seconds) == var.cleanup_budget_seconds
    error_message = "cleanup_budget_seconds must be an integer from 1 to 1700 (the function and the scheduler stop at 1800 s)."
  }
}

variable "cleanup_grace_seconds" {
  description = "How long past expiresAt a session is kept before cleanup deletes it (SESSION_CLEANUP_GRACE_SECONDS)."
  type        = number
  default     = 300

  validation {
    condition     = var.cleanup_grace_seconds >= 0 && var.cleanup_grace_seconds <= 604800 && floor(var.cleanup_grace_seconds) == var.cleanup_grace_seconds
    error_message = "cleanup_grace_seconds must be an integer from 0 to 604800."
  }
}

variable "cleanup_schedule" {
  description = "Cron schedule of the cleanup job."
  type        = string
  default     = "0 3 * * *"
}

variable "cleanup_time_zone" {
  description = "Time zone (tz database name) of the cleanup schedule."
  type        = string
  default     = "Etc/UTC"
}

# --- Capacity ---------------------------------------------------------------------------------------

variable "api_min_instances" {
  description = "Warm instances of sessionApi (0 allows scaling to zero)."
  type        = number
  default     = 0
}

variable "api_max_instances" {
  description = "Upper bound on sessionApi instances."
  type        = number
  default     = 20
}

variable "api_concurrency" {
  description = "Concurrent requests per sessionApi instance (the API waits on Datastore most of the time)."
  type        = number
  default     = 80

  validation {
    condition     = var.api_concurrency >= 1 && var.api_concurrency <= 1000
    error_message = "api_concurrency must be from 1 to 1000."
  }
}

variable "nodejs_runtime" {
  description = "Cloud Functions runtime of all three functions: a maintained Node.js LTS line that package.json `engines` admits and the tests run on (nodejs24, the newest Cloud Functions offers as generally available, or nodejs22)."
  type        = string
  default     = "nodejs24"

  validation {
    condition     = contains(["nodejs22", "nodejs24"], var.nodejs_runtime)
    error_message = "nodejs_runtime must be nodejs24 or nodejs22: the Node.js LTS lines package.json `engines` admits and npm test runs the functions on."
  }
}

variable "api_memory" {
  description = "Memory of a sessionApi instance."
  type        = string
  default     = "512M"
}

variable "kill_max_instances" {
  description = "Upper bound on killSessionByUser instances; bounds the delete load that fan-out can put on Datastore."
  type        = number
  default     = 10
}

variable "worker_memory" {
  description = "Memory of a killSessionByUser or startClearSessions instance."
  type        = string
  default     = "256M"
}

# --- Optional: the API under the site's own domain --------------------------------------------------

variable "custom_domain" {
  description = "Host name (for example sessions.example.com) to serve sessionApi on through an HTTPS load balancer with a managed certificate. Empty: no load balancer."
  type        = string
  default     = ""

  validation {
    condition     = var.custom_domain == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.custom_domain))
    error_message = "custom_domain must be a lowercase host name without scheme or path."
  }
}

# --- Monitoring (monitoring.tf) ---------------------------------------------------------------------

variable "notification_channels" {
  description = "Ids of existing Cloud Monitoring notification channels (projects/<p>/notificationChannels/<id>) every alert policy notifies; empty: the policies open incidents in the console only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "notification_channels must be full ids such as projects/my-project/notificationChannels/123."
  }
}

variable "kill_latency_bound_seconds" {
  description = "The stated revocation bound (docs/guarantees.md): an alert opens when a kill took longer than this from its publication to its last delete (the 95th percentile over 5 minutes)."
  type        = number
  default     = 60

  validation {
    condition     = var.kill_latency_bound_seconds >= 1 && var.kill_latency_bound_seconds <= 3600
    error_message = "kill_latency_bound_seconds must be from 1 to 3600."
  }
}

variable "store_unavailable_alert_per_minute" {
  description = "503 store_unavailable answers per minute (averaged over 5 minutes) above which an alert opens."
  type        = number
  default     = 1
}

variable "server_error_alert_per_minute" {
  description = "5xx answers per minute (averaged over 5 minutes) above which an alert opens."
  type        = number
  default     = 1
}
