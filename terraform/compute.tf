# The GPU pools: spot VMs (and optional standard fallbacks), stopped until the control
# plane starts them, each in its own zone with its own weights (boot) disk.

locals {
  startup_script = coalesce(var.vm_startup_script, file("${path.module}/../vm/startup.sh"))

  # What the VM agent reads (vm/startup.sh writes it to /etc/yoyo/agent.json, adding the
  # instance name). The agent backstops are later than the control plane's own limits:
  # it powers the VM off itself only when the control plane has failed to.
  agent_config = {
    for pool, p in var.pools : pool => {
      pool                 = pool
      project              = var.project_id
      heartbeat_topic      = google_pubsub_topic.event["heartbeat"].name
      firestore_database   = var.firestore_database
      heartbeat_interval_s = p.heartbeat_interval_s
      heartbeat_audience   = var.heartbeat_audience
      idle_shutdown_s      = coalesce(p.idle_shutdown_s, p.idle_timeout_s + 600)
      deadman_grace_s      = coalesce(p.deadman_grace_s, 900)
      metrics_url          = "http://127.0.0.1:8000/metrics"
      poweroff_command     = ["systemctl", "poweroff"]
      vllm_api_key_secret  = google_secret_manager_secret.gateway["vllm_api_key"].id # vm/startup.sh: vLLM's VLLM_API_KEY
      served_model_name    = coalesce(p.model, pool)                                 # vLLM --served-model-name
      weights_uri          = "gs://${google_storage_bucket.weights.name}/${trim(coalesce(p.weights_prefix, "models/${pool}"), "/")}"
    }
  }
}

module "pool" {
  source   = "./modules/pool"
  for_each = var.pools

  project_id  = var.project_id
  pool        = each.key
  name_prefix = var.prefix
  instances = {
    for x in local.pool_placements[each.key] : x.name => { zone = x.zone, provisioning = x.provisioning }
  }

  machine_type       = each.value.machine_type
  gpu_type           = each.value.gpu_type
  gpu_count          = each.value.gpu_count
  image              = each.value.image
  boot_disk_size_gb  = each.value.boot_disk_size_gb
  boot_disk_type     = each.value.boot_disk_type
  max_session_s      = each.value.max_session_s
  enable_secure_boot = var.enable_secure_boot

  network               = local.network
  subnetwork            = local.subnetwork
  network_tags          = ["${var.prefix}-gpu"]
  service_account_email = google_service_account.pool[each.key].email # pool_iam.tf

  labels = merge(var.labels, { (local.label_pool) = each.key })
  metadata = {
    (local.metadata_agent_config) = jsonencode(local.agent_config[each.key])
    (local.metadata_pool)         = each.key
    (local.metadata_worker)       = jsonencode(local.worker_config[each.key])
    "startup-script"              = local.startup_script
    "enable-oslogin"              = "TRUE"
  }

  operator_role   = google_project_iam_custom_role.instance_operator.name
  operator_member = "serviceAccount:${google_service_account.functions.email}"

  queue_threshold      = each.value.queue_threshold
  queue_renotify_s     = max(300, min(each.value.lease_s, 1800)) # within a lease: demand stays fresh
  work_subscription    = google_pubsub_subscription.work[each.key].name
  notification_channel = google_monitoring_notification_channel.queue.name
  alert_user_labels    = { for k, v in var.labels : replace(k, "-", "_") => v }

  depends_on = [
    google_project_iam_member.pool_logs,
    google_project_iam_member.pool_metrics,
    google_project_iam_member.pool_firestore_reader,
    google_pubsub_topic_iam_member.monitoring_publisher,
  ]
}
