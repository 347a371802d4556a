# Topics: one per event source (each triggers its function), the producers' work
# queue, and the dead-letter topic.
#
# Dead letters. Eventarc creates and owns the push subscription behind every
# Pub/Sub-triggered function; neither the Eventarc API nor google_cloudfunctions2_function
# can give it a dead_letter_policy (hashicorp/terraform-provider-google#17697). So:
# - every trigger retries deliberately (RETRY_POLICY_RETRY, functions.tf); the functions
#   acknowledge malformed or foreign messages themselves (DESIGN.md §7), so only transient
#   failures are redelivered, and Eventarc's subscription drops a message after its
#   24-hour retention;
# - the subscription Terraform does own, the work queue's, dead-letters into
#   "<prefix>-dead-letter", which keeps what it receives for 7 days in
#   "<prefix>-dead-letter-sub";
# - the Pub/Sub service agent may publish to the dead-letter topic, so an operator can
#   also attach it to an Eventarc subscription by hand (docs/deploy.md, "Dead letters").

resource "google_pubsub_topic" "event" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption is enough for control messages; a CMEK adds a KMS key to manage per project.

  for_each = local.entry_points

  project = var.project_id
  name    = "${var.prefix}-${each.key}"
  labels  = var.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption is enough for control messages.

  project = var.project_id
  name    = "${var.prefix}-${local.topic_dead_letter}"
  labels  = var.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "work" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption is enough for work-queue messages.

  project = var.project_id
  name    = "${var.prefix}-${local.topic_work}"
  labels  = var.labels

  depends_on = [google_project_service.apis]
}

# The work queue's subscription: producers publish work to "<prefix>-work", the pool's
# inference clients pull it from here; its backlog is what the queue alert watches.
resource "google_pubsub_subscription" "work" {
  project = var.project_id
  name    = "${var.prefix}-${local.topic_work}-sub"
  topic   = google_pubsub_topic.work.id
  labels  = var.labels

  ack_deadline_seconds       = 600
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = "" # never expires, even when no client pulls for a long time
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = 10
  }
}

resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = "${var.prefix}-${local.topic_dead_letter}-sub"
  topic   = google_pubsub_topic.dead_letter.id
  labels  = var.labels

  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}
