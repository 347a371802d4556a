output "topics" {
  description = "Every Pub/Sub topic: suffix => topic name."
  value = merge(
    { for k, t in google_pubsub_topic.event : k => t.name },
    {
      (local.topic_dead_letter) = google_pubsub_topic.dead_letter.name
      (local.topic_work)        = google_pubsub_topic.work.name
    },
  )
}

output "work_subscriptions" {
  description = "Each pool's work subscription (its yoyo-worker pulls batch shards from it; its backlog is the pool's queue alert)."
  value       = { for pool, s in google_pubsub_subscription.work : pool => s.name }
}

output "batch_bucket" {
  description = "The bucket holding batch inputs, checkpoints and results (the configuration's batch.bucket)."
  value       = google_storage_bucket.batch.name
}

output "dead_letter_subscription" {
  description = "Subscription holding dead-lettered messages for inspection."
  value       = google_pubsub_subscription.dead_letter.name
}

output "functions" {
  description = "Every Cloud Function: entry point => function name."
  value = merge(
    { for k, f in google_cloudfunctions2_function.event : local.entry_points[k] => f.name },
    {
      (local.entry_kill_switch_written) = google_cloudfunctions2_function.kill_switch.name
      (local.entry_status_page)         = google_cloudfunctions2_function.status_page.name
    },
  )
}

output "eventarc_triggers" {
  description = "Eventarc trigger of each event-driven function (entry point => trigger), e.g. to find its Pub/Sub subscription."
  value = merge(
    { for k, f in google_cloudfunctions2_function.event : local.entry_points[k] => f.event_trigger[0].trigger },
    { (local.entry_kill_switch_written) = google_cloudfunctions2_function.kill_switch.event_trigger[0].trigger },
  )
}

output "status_page_url" {
  description = "URL of the authenticated status page (call it with an identity token)."
  value       = google_cloudfunctions2_function.status_page.url
}

output "instances" {
  description = "GPU VMs of each pool: pool => [instance names]."
  value       = local.pool_instances
}

output "weights_bucket" {
  description = "Bucket holding the model weights (upload to the pool's weights_prefix)."
  value       = google_storage_bucket.weights.name
}

output "weights_uris" {
  description = "Where each pool's VMs fetch their weights from: pool => gs:// URI."
  value       = { for pool, c in local.agent_config : pool => c.weights_uri }
}

output "source_bucket" {
  description = "Bucket holding the function source archives."
  value       = google_storage_bucket.source.name
}

output "budget_ids" {
  description = "Budget IDs whose notifications the control plane acts on."
  value       = local.budget_ids
}

output "service_accounts" {
  description = "Service account of each role: role => email."
  value = {
    functions = google_service_account.functions.email
    eventarc  = google_service_account.eventarc.email
    scheduler = google_service_account.scheduler.email
    vm        = google_service_account.vm.email
    build     = google_service_account.build.email
    gateway   = google_service_account.gateway.email
  }
}

output "pool_service_accounts" {
  description = "Service account of each pool's VMs: pool => email."
  value       = { for pool, sa in google_service_account.pool : pool => sa.email }
}

output "control_config" {
  description = "The YOYO_CONFIG JSON every function receives (also what `yoyoctl` needs to talk to this deployment)."
  value       = jsonencode(local.control_config)
}

output "firestore_database" {
  description = "Firestore database ID the control plane uses."
  value       = var.firestore_database
}
