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
# (lib/store/datastoreStore.ts). Guest and all-users kills, the cleanup (the 16 shards of the
# indexed expiry, and expiresAt < T for sessions written before expiry existed) and finding a
# session by its handle use Datastore's built-in single-property indexes.
resource "google_firestore_index" "kill_by_user" {
  project     = var.project_id
  database    = var.database_id
  collection  = local.kind
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

# The listing of a user's live sessions as it was before `userExpiry` existed: user = U AND
# expiresAt > now, ordered by expiresAt descending, with a property mask (lib/store/datastoreStore.ts).
# Sessions written now store expiresAt unindexed (every write moved it to a new maximum: a hotspot,
# docs/capacity.md#the-hotspot) and so have no entry here; the listing queries their indexed
# userExpiry instead (a built-in index). This index serves the sessions written before, until their
# next write moves them (docs/storage.md#the-move-off-indexed-expiresat); it no longer grows.
resource "google_firestore_index" "live_by_user" {
  project     = var.project_id
  database    = var.database_id
  collection  = local.kind
  api_scope   = "DATASTORE_MODE_API"
  query_scope = "COLLECTION_GROUP"

  fields {
    field_path = "user"
    order      = "ASCENDING"
  }

  fields {
    field_path = "expiresAt"
    order      = "DESCENDING"
  }

  depends_on = [google_project_service.required, google_firestore_database.sessions]
}

# TTL policy: Datastore deletes a session some time (typically within a day) after its expiresAt.
# It is garbage collection only; expiry is checked on every read, and the nightly cleanup catches up
# faster.
#
# Not google_firestore_field: on create the provider always sends an indexConfig, which a
# Datastore-mode database refuses ("Single-field indexing modes cannot be updated in Datastore mode
# databases", hashicorp/terraform-provider-google#15781). gcloud changes the TTL configuration alone.
# A TTL field may be indexed or not: sessions store expiresAt unindexed (docs/storage.md).
# --enable-ttl asks for a state, not a change, so running it again is meant to be harmless (not
# verified offline; docs/deploy.md).
resource "terraform_data" "expires_at_ttl" {
  # A ViUR app's sessions carry no timestamp to expire on (lastseen is a double): the cleanup alone
  # removes them in viur format. With session events on, the cleanup alone removes expired
  # sessions too: a session the TTL policy deleted would never get its `expired` event.
  count = var.session_format == "native" && var.events_topic == "" ? 1 : 0

  triggers_replace = {
    project  = var.project_id
    database = var.database_id
    kind     = local.kind
    field    = "expiresAt"
  }

  # Values go in through the environment, so no shell quoting depends on them.
  provisioner "local-exec" {
    command = "gcloud firestore fields ttls update \"$TTL_FIELD\" --collection-group=\"$TTL_KIND\" --database=\"$TTL_DATABASE\" --project=\"$TTL_PROJECT\" --enable-ttl --quiet"
    environment = {
      TTL_FIELD    = self.triggers_replace.field
      TTL_KIND     = self.triggers_replace.kind
      TTL_DATABASE = self.triggers_replace.database
      TTL_PROJECT  = self.triggers_replace.project
    }
  }

  # terraform destroy (or a changed kind) switches the policy off again; a failure here must not
  # block the rest of the destroy, the policy only deletes expired sessions.
  provisioner "local-exec" {
    when       = destroy
    on_failure = continue
    command    = "gcloud firestore fields ttls update \"$TTL_FIELD\" --collection-group=\"$TTL_KIND\" --database=\"$TTL_DATABASE\" --project=\"$TTL_PROJECT\" --disable-ttl --quiet"
    environment = {
      TTL_FIELD    = self.triggers_replace.field
      TTL_KIND     = self.triggers_replace.kind
      TTL_DATABASE = self.triggers_replace.database
      TTL_PROJECT  = self.triggers_replace.project
    }
  }

  depends_on = [google_project_service.required, google_firestore_database.sessions]
}
