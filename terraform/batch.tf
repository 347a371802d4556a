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

# The batch controller's function finalizes batches (merges checkpoints into the results)
# and re-publishes the shards of a batch whose submit was interrupted or that stopped
# moving. (The gateway stores uploads and submits batches as its own account: gateway.tf.)
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

# Producers' depths reach the queue topic; a batch's wake is the batch controller's
# nudge (its own topic, below), not a queue depth.
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

# --- the batch controller (README "Batch", docs/architecture.md) ---------------------
#
# Its own function, topic and schedule, beside the lifecycle's: the tick never reads a
# batch, so a batch that is slow or broken to read (its objects are written by VMs)
# never delays a stop path. It finalizes batches (streamed: bench/RESULTS.md measures
# its peak memory), republishes shards that stopped moving, and tells the lifecycle each
# pool's batch demand. A submit, cancel or retry also publishes to its topic.

locals {
  topic_batch = "batch"    # names.TOPIC_BATCH
  entry_batch = "on_batch" # names.ENTRY_BATCH
}

variable "batch_controller_memory" {
  description = "Memory of the batch controller's function (it finalizes batches: peak under 256 MiB for a 200 MiB batch, bench/RESULTS.md). Gen2 tiers: 512M has 0.333 vCPU, 1G 0.583 vCPU (cloud.google.com/functions/docs/configuring/memory)."
  type        = string
  default     = "1G"

  validation {
    condition     = contains(["512M", "1G", "2G", "4G"], var.batch_controller_memory)
    error_message = "batch_controller_memory must be one of 512M, 1G, 2G, 4G (the finalize needs more than 256M)."
  }
}

variable "batch_controller_timeout_s" {
  description = "Timeout of the batch controller's function, in seconds: event-driven functions run at most 540 s (cloud.google.com/functions/quotas, Time limits)."
  type        = number
  default     = 540

  validation {
    condition     = var.batch_controller_timeout_s >= 60 && var.batch_controller_timeout_s <= 540 && floor(var.batch_controller_timeout_s) == var.batch_controller_timeout_s
    error_message = "batch_controller_timeout_s must be a whole number within 60..540 (event-driven functions' limit)."
  }
}

variable "batch_controller_cron" {
  description = "When the batch controller runs (Cloud Scheduler cron, UTC): every minute by default, like the tick."
  type        = string
  default     = "* * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.batch_controller_cron))) == 5
    error_message = "batch_controller_cron must be a five-field cron expression."
  }
}

resource "google_pubsub_topic" "batch" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption is enough for control messages; a CMEK adds a KMS key to manage per project.
  project = var.project_id
  name    = "${var.prefix}-${local.topic_batch}"
  labels  = var.labels

  depends_on = [google_project_service.apis]
}

resource "google_cloudfunctions2_function" "batch" {
  project     = var.project_id
  location    = var.region
  name        = "${var.prefix}-${replace(local.entry_batch, "_", "-")}"
  description = "Yo-Yo batch controller: ${local.entry_batch} (topic ${google_pubsub_topic.batch.name})"
  labels      = var.labels

  build_config {
    runtime         = var.python_runtime
    entry_point     = local.entry_batch
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = local.function_source.bucket
        object = local.function_source.object
      }
    }
  }

  service_config {
    available_memory = var.batch_controller_memory
    timeout_seconds  = var.batch_controller_timeout_s
    # One run at a time is enough (every run looks at every pending batch); two would
    # finalize the same batch twice (harmless: the record turns terminal once).
    max_instance_count             = 1
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.functions.email
    environment_variables          = local.function_env
  }

  event_trigger {
    trigger_region = var.region
    event_type     = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic   = google_pubsub_topic.batch.id
    # Retried only when the store or Storage is briefly unavailable (the function raises
    # TemporaryError); a run that cannot finish is looked at again by the next schedule.
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.eventarc.email
  }

  depends_on = [
    google_project_iam_member.build,
    google_project_iam_member.eventarc_receiver,
    google_project_iam_member.functions_project,
  ]
}

resource "google_cloud_scheduler_job" "batch" {
  project          = var.project_id
  region           = var.region
  name             = "${var.prefix}-${local.topic_batch}"
  description      = "Yo-Yo: run the batch controller (finalize, republish, count each pool's batch demand)."
  schedule         = var.batch_controller_cron
  time_zone        = "Etc/UTC"
  attempt_deadline = "30s"

  # The next run comes at the next schedule: no retries.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "https://pubsub.googleapis.com/v1/${google_pubsub_topic.batch.id}:publish"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ messages = [{ data = base64encode(jsonencode({})) }] }))

    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/pubsub"
    }
  }

  depends_on = [
    google_pubsub_topic_iam_member.scheduler_batch_publisher,
    google_service_account_iam_member.scheduler_token_creator,
  ]
}

# The scheduler's job publishes the controller's runs; the functions (a submit through
# the gateway, a cancel) publish its nudges.
resource "google_pubsub_topic_iam_member" "scheduler_batch_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.batch.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.scheduler.email}"
}

resource "google_pubsub_topic_iam_member" "functions_batch_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.batch.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.functions.email}"
}
