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
# - the subscriptions Terraform does own, each pool's work queue (batch.tf), dead-letter into
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
