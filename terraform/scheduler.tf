# Cloud Scheduler: a cycle job per pool (its run window) and the minute tick.
#
# A Cloud Scheduler Pub/Sub target always publishes as the Google-managed Cloud
# Scheduler service agent; it cannot take a service account. To publish with an
# identity we own and limit (the scheduler service account may publish to the cycle
# and tick topics only), the jobs call the Pub/Sub REST API's topics.publish instead,
# with an OAuth token of that account. The message that lands on the topic is the same.

locals {
  cycle_jobs = {
    for pool, p in var.pools : pool => p.cycle if p.cycle != null
  }

  # Pub/Sub "topics.publish" request body carrying one message with this data.
  publish_body = {
    for name, payload in merge(
      { for pool, c in local.cycle_jobs : "cycle-${pool}" => jsonencode({ pool = pool, window = "${floor(c.window_s / 60)}m" }) },
      { tick = jsonencode({}) },
    ) : name => base64encode(jsonencode({ messages = [{ data = base64encode(payload) }] }))
  }
}

resource "google_cloud_scheduler_job" "cycle" {
  for_each = local.cycle_jobs

  project          = var.project_id
  region           = var.region
  name             = "${var.prefix}-cycle-${each.key}"
  description      = "Yo-Yo: give pool ${each.key} a ${each.value.window_s}s run window."
  schedule         = each.value.cron
  time_zone        = each.value.time_zone
  attempt_deadline = "60s"

  retry_config {
    retry_count          = 3
    min_backoff_duration = "10s"
    max_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://pubsub.googleapis.com/v1/${google_pubsub_topic.event["cycle"].id}:publish"
    headers     = { "Content-Type" = "application/json" }
    body        = local.publish_body["cycle-${each.key}"]

    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/pubsub"
    }
  }

  depends_on = [
    google_pubsub_topic_iam_member.scheduler_publisher,
    google_service_account_iam_member.scheduler_token_creator,
  ]
}

resource "google_cloud_scheduler_job" "tick" {
  project          = var.project_id
  region           = var.region
  name             = "${var.prefix}-tick"
  description      = "Yo-Yo: reconcile every pool every minute (observe VMs, enforce deadlines and caps)."
  schedule         = var.tick_cron
  time_zone        = "Etc/UTC"
  attempt_deadline = "30s"

  # The next tick comes in a minute: no retries.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "https://pubsub.googleapis.com/v1/${google_pubsub_topic.event["tick"].id}:publish"
    headers     = { "Content-Type" = "application/json" }
    body        = local.publish_body["tick"]

    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/pubsub"
    }
  }

  depends_on = [
    google_pubsub_topic_iam_member.scheduler_publisher,
    google_service_account_iam_member.scheduler_token_creator,
  ]
}
