# One identity per job, each with only what that job does. Project-level grants are limited to
# roles that cannot be narrowed to a resource (Datastore access, building functions).

# --- Identities -------------------------------------------------------------------------------------

resource "google_service_account" "api" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-api"
  display_name = "Session API (sessionApi) runtime"

  depends_on = [google_project_service.required]
}

resource "google_service_account" "kill" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-kill"
  display_name = "Session kill (killSessionByUser) runtime"

  depends_on = [google_project_service.required]
}

resource "google_service_account" "cleanup" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-cleanup"
  display_name = "Session cleanup (startClearSessions) runtime"

  depends_on = [google_project_service.required]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Cloud Scheduler identity that invokes the session cleanup"

  depends_on = [google_project_service.required]
}

resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push"
  display_name = "Pub/Sub push identity that invokes the session kill function"

  depends_on = [google_project_service.required]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "Cloud Build identity that builds the session functions"

  depends_on = [google_project_service.required]
}

# --- Datastore: the three runtimes read and write sessions -------------------------------------------

# Datastore has no per-kind IAM; roles/datastore.user is the smallest predefined role that reads,
# writes and runs transactions and queries (no index or database administration).
resource "google_project_iam_member" "api_datastore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.api.email}"
}

resource "google_project_iam_member" "kill_datastore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.kill.email}"
}

resource "google_project_iam_member" "cleanup_datastore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.cleanup.email}"
}

# --- Build ------------------------------------------------------------------------------------------

# New projects no longer give Cloud Build a usable default identity for functions; this is the
# role Google documents for a dedicated build service account (logs, Artifact Registry, sources).
resource "google_project_iam_member" "build_run_builder" {
  project = var.project_id
  role    = "roles/run.builder"
  member  = "serviceAccount:${google_service_account.build.email}"
}

# IAM grants take effect some time after they are written. In a fresh project the first function
# build would otherwise start before the build identity may read the source and push the image;
# the provider's own example for a build service account waits 60 s. The same wait covers the
# Pub/Sub service agent, which is new to IAM when terraform_data.pubsub_service_identity has just
# created it. Only the apply that creates (or replaces) these waits.
resource "time_sleep" "iam_propagation" {
  create_duration = "60s"

  triggers = {
    build_member = google_project_iam_member.build_run_builder.member
    pubsub_agent = terraform_data.pubsub_service_identity.id
  }
}

# --- Invokers (roles/run.invoker on each function's Cloud Run service) -------------------------------

# Bindings, not members: each is authoritative for the invoker role on its service, so an invoker
# added by hand is removed on the next apply and "only X may call this" stays true.

resource "google_cloud_run_service_iam_binding" "api_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.api.service_config[0].service
  role     = "roles/run.invoker"
  # Public: browsers call it. Privileged routes verify Google ID tokens in the function itself.
  members = ["allUsers"]
}

resource "google_cloud_run_service_iam_binding" "kill_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.kill.service_config[0].service
  role     = "roles/run.invoker"
  members  = ["serviceAccount:${google_service_account.push.email}"]
}

resource "google_cloud_run_service_iam_binding" "cleanup_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.cleanup.service_config[0].service
  role     = "roles/run.invoker"
  members  = ["serviceAccount:${google_service_account.scheduler.email}"]
}

# --- Publishing kill messages -----------------------------------------------------------------------

# POST /sessions/kill publishes.
resource "google_pubsub_topic_iam_member" "kill_publisher_api" {
  project = var.project_id
  topic   = google_pubsub_topic.kill.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.api.email}"
}

# Work that does not fit one invocation continues in a follow-up message.
resource "google_pubsub_topic_iam_member" "kill_publisher_kill" {
  project = var.project_id
  topic   = google_pubsub_topic.kill.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.kill.email}"
}

# A cleanup run that ends its budget with work left hands the rest to the kill function.
resource "google_pubsub_topic_iam_member" "kill_publisher_cleanup" {
  project = var.project_id
  topic   = google_pubsub_topic.kill.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.cleanup.email}"
}

# Callers outside this stack, for example the backend that changes passwords or an operator group.
resource "google_pubsub_topic_iam_member" "kill_publisher_extra" {
  for_each = toset(var.kill_publishers)

  project = var.project_id
  topic   = google_pubsub_topic.kill.name
  role    = "roles/pubsub.publisher"
  member  = each.value
}

# --- Pub/Sub service agent: push authentication and dead-lettering ----------------------------------

# Enabling the API does not promise that the agent exists by the time its grants are written; this
# asks Service Usage to create it (generateServiceIdentity, whose answer is the identity "created
# or retrieved", so a second run is harmless). Not google_project_service_identity: that resource exists only in google-beta, and
# gcloud is needed for the TTL policy anyway. The member below is spelled from the project number,
# which names the agent for sure.
resource "terraform_data" "pubsub_service_identity" {
  triggers_replace = {
    project = var.project_id
    service = "pubsub.googleapis.com"
  }

  provisioner "local-exec" {
    command = "gcloud beta services identity create --service=\"$IDENTITY_SERVICE\" --project=\"$IDENTITY_PROJECT\" --quiet"
    environment = {
      IDENTITY_SERVICE = self.triggers_replace.service
      IDENTITY_PROJECT = self.triggers_replace.project
    }
  }

  depends_on = [google_project_service.required]
}

locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# Pub/Sub mints the push OIDC token as the push identity. Projects that enabled Pub/Sub after
# April 2021 do not need this; older ones do. It is scoped to that one account.
resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [time_sleep.iam_propagation]
}

# Dead-lettering: the service agent moves the message to the dead-letter topic and then
# acknowledges it on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.kill_dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent

  depends_on = [time_sleep.iam_propagation]
}

resource "google_pubsub_subscription_iam_member" "dead_letter_source_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.kill_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent

  depends_on = [time_sleep.iam_propagation]
}
