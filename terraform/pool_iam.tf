# One service account per pool: its VMs (agent, weights download, vLLM's key, batch
# worker) run as it, so a VM touches only its own pool's work. Each may:
# - publish heartbeats (the heartbeat topic; the control plane checks every heartbeat's
#   identity token against the pool's configuration, never a VM's word about another VM);
# - read the control plane's Firestore database (the kill switch, its lease; Firestore IAM
#   stops at the database, nothing there is secret, and it cannot write);
# - read the weights bucket, read vLLM's key, write logs and metrics;
# - pull its own pool's work subscription only;
# - read and write batch objects: with batch_objects_by_pool, only those under
#   "pools/<pool>/" (an IAM condition on the object name); without it, the whole batch
#   bucket, because the batch code keeps objects under "batches/<id>/" today
#   (docs/deploy.md, "Service accounts").
#
# Account IDs are 6-30 characters (https://cloud.google.com/iam/docs/service-accounts-create):
# "<prefix>-vm-" and 8 hex digits of the pool name's SHA-256 fit any prefix and pool name;
# the display name carries the pool.

locals {
  pool_account_id = { for pool, _ in var.pools : pool => "${var.prefix}-vm-${substr(sha256(pool), 0, 8)}" }
}

resource "google_service_account" "pool" {
  for_each = var.pools

  project      = var.project_id
  account_id   = local.pool_account_id[each.key]
  display_name = "Yo-Yo pool ${each.key} VMs (agent, worker)"
  depends_on   = [google_project_service.apis]
}

resource "google_pubsub_topic_iam_member" "pool_heartbeat_publisher" {
  for_each = var.pools

  project = var.project_id
  topic   = google_pubsub_topic.event["heartbeat"].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.pool[each.key].member
}

resource "google_project_iam_member" "pool_logs" {
  for_each = var.pools

  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.pool[each.key].member
}

resource "google_project_iam_member" "pool_metrics" {
  for_each = var.pools

  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = google_service_account.pool[each.key].member
}

resource "google_project_iam_member" "pool_firestore_reader" {
  for_each = var.pools

  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = google_service_account.pool[each.key].member

  condition {
    title       = "control-plane-database-only"
    description = "Only the Yo-Yo control plane's Firestore database."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""
  }
}

resource "google_storage_bucket_iam_member" "pool_weights_reader" {
  for_each = var.pools

  bucket = google_storage_bucket.weights.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.pool[each.key].member
}

# The VMs read vLLM's key at boot (vm/startup.sh) into vLLM's environment (VLLM_API_KEY).
resource "google_secret_manager_secret_iam_member" "pool_reads_vllm_key" {
  for_each = var.pools

  project   = var.project_id
  secret_id = google_secret_manager_secret.gateway["vllm_api_key"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.pool[each.key].member
}

resource "google_pubsub_subscription_iam_member" "pool_work_subscriber" {
  for_each = var.pools

  project      = var.project_id
  subscription = google_pubsub_subscription.work[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.pool[each.key].member
}

# Cloud Storage IAM conditions name objects "projects/_/buckets/BUCKET/objects/OBJECT"
# and take a resource.name.startsWith() prefix (Google's sample
# storage-add-bucket-conditional-iam-binding). Listing is authorized on the bucket, not on
# an object, so the condition also admits the bucket itself (object names, not contents).
# Not exercised on a real bucket (docs/deploy.md, "What is not verified").
resource "google_storage_bucket_iam_member" "pool_batch_objects" {
  for_each = var.pools

  bucket = google_storage_bucket.batch.name
  role   = "roles/storage.objectUser"
  member = google_service_account.pool[each.key].member

  dynamic "condition" {
    for_each = var.batch_objects_by_pool ? [1] : []
    content {
      title       = "pool-${each.key}-objects-only"
      description = "Only the batch objects of pool ${each.key}."
      expression  = "resource.type == \"storage.googleapis.com/Bucket\" || resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.batch.name}/objects/pools/${each.key}/\")"
    }
  }
}
