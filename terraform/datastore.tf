# Firestore in Datastore mode. Many projects already have their (default) database, and a project
# cannot hold two databases with the same id, so creating one is opt-in.
resource "google_firestore_database" "sessions" {
  count = var.create_database ? 1 : 0

  project     = var.project_id
  name        = var.database_id
  location_id = var.database_location != "" ? var.database_location : var.region
  type        = "DATASTORE_MODE"

  app_engine_integration_mode = "DISABLED"
  delete_protection_state     = "DELETE_PROTECTION_ENABLED"
  # terraform destroy forgets the database instead of deleting it: it may hold more than sessions.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.required]
}

# The kill query: user = U AND createdAt <= T, ordered by createdAt, keys only
# (shared/datastoreStore.ts). Guest and all-users kills and the cleanup query
# (expiresAt < T) use Datastore's built-in single-property indexes.
resource "google_firestore_index" "kill_by_user" {
  project     = var.project_id
  database    = var.database_id
  collection  = var.kind
  api_scope   = "DATASTORE_MODE_API"
  query_scope = "COLLECTION_GROUP"

  fields {
    field_path = "user"
    order      = "ASCENDING"
  }

  fields {
    field_path = "createdAt"
    order      = "ASCENDING"
  }

  depends_on = [google_project_service.required, google_firestore_database.sessions]
}

# TTL policy: Datastore deletes a session some time (typically within a day) after its expiresAt.
# It is garbage collection only; expiry is checked on every read, and the nightly cleanup catches up
# faster.
resource "google_firestore_field" "expires_at_ttl" {
  project    = var.project_id
  database   = var.database_id
  collection = var.kind
  field      = "expiresAt"

  ttl_config {}

  # No index_config: the field keeps its inherited single-property indexes, which the cleanup
  # query (expiresAt < T) needs. An empty index_config block would remove them.

  depends_on = [google_project_service.required, google_firestore_database.sessions]
}
