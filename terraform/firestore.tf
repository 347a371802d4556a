# Firestore (native mode): pool documents, heartbeats, the kill switch and the event log.
# The location is permanent: pick it before the first apply (docs/deploy.md).

resource "google_firestore_database" "this" {
  count = var.create_firestore_database ? 1 : 0

  project                 = var.project_id
  name                    = var.firestore_database
  location_id             = local.firestore_location
  type                    = "FIRESTORE_NATIVE"
  concurrency_mode        = "OPTIMISTIC"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"

  depends_on = [google_project_service.apis]
}

# Event-log documents carry their own expiry time; Firestore deletes them after it.
resource "google_firestore_field" "event_ttl" {
  project    = var.project_id
  database   = var.firestore_database
  collection = local.collection_events
  field      = local.event_ttl_field

  ttl_config {}

  # No single-field indexes on the expiry timestamp: nothing queries it, and indexing a
  # monotonically increasing value only adds write cost and hotspots.
  index_config {}

  depends_on = [google_firestore_database.this]
}

# events() reads the newest events first, of every pool or of one: Firestore needs a
# composite index for each ordering (the emulator does not, production does).
resource "google_firestore_index" "events_by_time" {
  project    = var.project_id
  database   = var.firestore_database
  collection = local.collection_events

  fields {
    field_path = "at"
    order      = "DESCENDING"
  }
  fields {
    field_path = "committed_at"
    order      = "DESCENDING"
  }
  fields {
    field_path = "n"
    order      = "DESCENDING"
  }

  depends_on = [google_firestore_database.this]
}

resource "google_firestore_index" "events_by_pool_and_time" {
  project    = var.project_id
  database   = var.firestore_database
  collection = local.collection_events

  fields {
    field_path = "pool"
    order      = "ASCENDING"
  }
  fields {
    field_path = "at"
    order      = "DESCENDING"
  }
  fields {
    field_path = "committed_at"
    order      = "DESCENDING"
  }
  fields {
    field_path = "n"
    order      = "DESCENDING"
  }

  depends_on = [google_firestore_database.this]
}
