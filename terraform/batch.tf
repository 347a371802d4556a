# Batch inference (README "Batch", docs/messages.md): the bucket holding batch inputs,
# checkpoints and results; one work subscription per pool (a filter on the work topic's
# "pool" attribute, so work wakes and feeds only its own pool); and the least privileges
# the VMs' worker and the functions need. yoyoctl publishes a shard reference per work
# message; yoyo-worker on the pool's VMs pulls them from its pool's subscription.

locals {
  batch_bucket = coalesce(var.batch_bucket_name, "${var.project_id}-${var.prefix}-batch")

  # yoyo-worker's /etc/yoyo/worker.json (VMs); the functions' "batch" section is in config.tf.
  worker_config = {
    for pool, _ in var.pools : pool => {
      project        = var.project_id
      subscription   = google_pubsub_subscription.work[pool].name
      bucket         = google_storage_bucket.batch.name
      server_url     = "http://127.0.0.1:8000"
      concurrency    = var.batch.concurrency
      ack_deadline_s = var.batch.ack_deadline_s
    }
  }
}

resource "google_storage_bucket" "batch" {
  #checkov:skip=CKV_GCP_62:Access logs of a private bucket used only by the VMs and the functions add cost, not insight; Cloud Audit Logs cover admin access.
  #checkov:skip=CKV_GCP_78:Batch objects are inputs, checkpoints and results with a lifetime of days; versioning would only keep every rewritten checkpoint twice.
  project                     = var.project_id
  name                        = local.batch_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets
  labels                      = var.labels

  # Inputs, checkpoints and results go after batch.retention_days (download results first).
  lifecycle_rule {
    condition {
      age = var.batch.retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# Each pool's work queue: the work topic's messages whose "pool" attribute names it.
# Its backlog is what the pool's queue alert watches (modules/pool).
resource "google_pubsub_subscription" "work" {
  for_each = var.pools

  project = var.project_id
  name    = "${var.prefix}-${local.topic_work}-sub-${each.key}"
  topic   = google_pubsub_topic.work.id
  filter  = "attributes.pool = \"${each.key}\""
  labels  = var.labels

  ack_deadline_seconds       = var.batch.ack_deadline_s
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = "" # never expires, even when no worker pulls for a long time
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

# --- who may do what ---------------------------------------------------------------

# The worker on the VMs reads inputs, writes checkpoints and pulls its pool's shards as
# its pool's own account (pool_iam.tf: pool_batch_objects, pool_work_subscriber).

# The functions' tick finalizes batches (merges checkpoints into the results) and
# re-publishes the shards of a batch whose submit was interrupted. (The gateway stores
# uploads and submits batches as its own account: gateway.tf.)
resource "google_storage_bucket_iam_member" "functions_batch_user" {
  bucket = google_storage_bucket.batch.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.functions.email}"
}

resource "google_pubsub_topic_iam_member" "functions_work_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.work.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.functions.email}"
}

# The gateway's POST /v1/batches submits a batch: its shards go to the work topic (above)
# and the pool's wake, a queue-depth message, to the queue topic.
resource "google_pubsub_topic_iam_member" "functions_queue_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.event["queue"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.functions.email}"
}

# Pub/Sub moves a shard that failed max_delivery_attempts times to the dead-letter topic.
resource "google_pubsub_subscription_iam_member" "pubsub_work_subscriber" {
  for_each = var.pools

  project      = var.project_id
  subscription = google_pubsub_subscription.work[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
