# One Yo-Yo pool: its GPU VMs (spot, and optional standard ones as a fallback), each in its
# own zone with its own boot disk holding the model weights, the grants that let the control plane start and stop
# exactly these VMs, and the queue alert that wakes the pool when work piles up.
#
# The VMs are created stopped (desired_status = TERMINATED) and Terraform ignores their
# status afterwards: the control plane alone starts and stops them. Compute Engine's own
# max_run_duration (termination action STOP) is the third, independent stop path.

resource "google_compute_instance" "vm" {
  #checkov:skip=CKV_GCP_32:block-project-ssh-keys is set to TRUE in the metadata merge below; checkov does not evaluate merge().
  #checkov:skip=CKV_GCP_38:A customer-supplied key would have to be sent with every start, which the control plane cannot hold safely; Google-managed encryption is used.
  for_each = var.instances

  project        = var.project_id
  zone           = each.value.zone
  name           = each.key
  machine_type   = var.machine_type
  description    = "Yo-Yo GPU VM of pool ${var.pool}: started and stopped by the control plane only."
  labels         = var.labels
  metadata       = merge(var.metadata, { block-project-ssh-keys = "TRUE" })
  tags           = var.network_tags
  desired_status = "TERMINATED"

  # Terraform never stops a VM itself: a change that needs a stopped VM (machine type,
  # service account) waits until the control plane has stopped it (no work), then applies.
  allow_stopping_for_update = false

  # The boot disk is zonal and this VM's own: it also holds the weights, so a VM that has
  # run before starts with them on disk (the control plane prefers such VMs).
  boot_disk {
    auto_delete = true

    initialize_params {
      image  = var.image
      size   = var.boot_disk_size_gb
      type   = var.boot_disk_type
      labels = var.labels
    }
  }

  dynamic "guest_accelerator" {
    for_each = var.gpu_count > 0 ? [1] : []
    content {
      type  = var.gpu_type
      count = var.gpu_count
    }
  }

  # No access_config: no external IP. Google APIs are reached with Private Google Access.
  network_interface {
    network    = var.network
    subnetwork = var.subnetwork
  }

  # Spot by default; "standard" VMs are the fallback the control plane starts only when
  # spot has been refused in every zone. Either way: no automatic restart, and
  # max_run_duration with STOP (the third stop path).
  scheduling {
    provisioning_model          = each.value.provisioning == "standard" ? "STANDARD" : "SPOT"
    preemptible                 = each.value.provisioning != "standard"
    automatic_restart           = false
    on_host_maintenance         = "TERMINATE"
    instance_termination_action = "STOP"

    max_run_duration {
      seconds = var.max_session_s
    }
  }

  shielded_instance_config {
    enable_secure_boot          = var.enable_secure_boot
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  service_account {
    email  = var.service_account_email
    scopes = ["cloud-platform"] # access is limited by the account's IAM roles
  }

  lifecycle {
    # The control plane owns the power state; Terraform must never fight it.
    # A changed max_run_duration makes the provider replace the instance
    # (hashicorp/terraform-provider-google#26148): a new max_session_s reaches existing
    # VMs only through an explicit `terraform apply -replace` (docs/deploy.md).
    ignore_changes = [desired_status, scheduling[0].max_run_duration]
  }
}

# The control plane may read, start and stop these VMs, and no others.
resource "google_compute_instance_iam_member" "operator" {
  for_each = google_compute_instance.vm

  project       = var.project_id
  zone          = each.value.zone
  instance_name = each.value.name
  role          = var.operator_role
  member        = var.operator_member
}

# Work is waiting: the backlog of the work subscription has been at or above the pool's
# queue_threshold for a minute (Monitoring supports only GT/LT here, and the backlog is a
# whole number, so ">= n" is "> n - 1"). The incident (and its closing) goes to the queue topic; the pool name
# rides along in the policy's user labels.
resource "google_monitoring_alert_policy" "queue" {
  project      = var.project_id
  display_name = "${var.name_prefix}-queue-threshold-${var.pool}"
  combiner     = "OR"
  user_labels  = merge(var.alert_user_labels, { yoyo_pool = var.pool })

  conditions {
    display_name = "backlog above threshold"

    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" resource.type=\"pubsub_subscription\" resource.label.\"subscription_id\"=\"${var.work_subscription}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.queue_threshold - 1
      duration        = "60s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  # Notify on open and on close (close = depth 0), and again every renotify interval
  # while the backlog stays: a second signal of pending work besides the batch records.
  alert_strategy {
    auto_close           = "1800s"
    notification_prompts = ["OPENED", "CLOSED"]

    notification_channel_strategy {
      notification_channel_names = [var.notification_channel]
      renotify_interval          = "${var.queue_renotify_s}s"
    }
  }

  documentation {
    content   = "Work is queued for the Yo-Yo pool ${var.pool}."
    mime_type = "text/markdown"
  }

  notification_channels = [var.notification_channel]
}
