variable "project_id" {
  description = "Project of the pool's VMs and alert policy."
  type        = string
}

variable "pool" {
  description = "Pool name (label value, alert user label, part of the instance names)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.pool))
    error_message = "pool must be 1-31 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "name_prefix" {
  description = "Deployment prefix, used in the alert policy's display name."
  type        = string
}

variable "instances" {
  description = "The pool's VMs: name => {zone, provisioning}. Each VM is created in its own zone (which must offer var.gpu_type) with its own boot disk, which also holds the model weights. provisioning: \"spot\" (SPOT) or \"standard\" (the fallback, started only when spot is refused in every zone)."
  type = map(object({
    zone         = string
    provisioning = optional(string, "spot")
  }))

  validation {
    condition     = length(var.instances) > 0 && alltrue([for n, _ in var.instances : can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", n))])
    error_message = "instances must be non-empty, keyed by valid Compute Engine names."
  }

  validation {
    condition     = alltrue([for i in values(var.instances) : contains(["spot", "standard"], i.provisioning)])
    error_message = "provisioning must be \"spot\" or \"standard\"."
  }
}

variable "machine_type" {
  description = "Machine type, e.g. g2-standard-8 (1 x L4)."
  type        = string
}

variable "gpu_type" {
  description = "Accelerator type, e.g. nvidia-l4. Ignored when gpu_count is 0 (machine types with built-in GPUs, A3/A2 ultra)."
  type        = string
}

variable "gpu_count" {
  description = "Number of GPUs attached as guest accelerators (0 for machine types that bundle their GPUs)."
  type        = number

  validation {
    condition     = contains([0, 1, 2, 4, 8], var.gpu_count)
    error_message = "gpu_count must be 0, 1, 2, 4 or 8."
  }
}

variable "image" {
  description = "Boot image built by vm/image/build-image.sh (self link, projects/P/global/images/family/F, ...)."
  type        = string
}

variable "boot_disk_size_gb" {
  description = "Boot disk size in GB; it also holds the model weights (/var/lib/yoyo/model)."
  type        = number

  validation {
    condition     = var.boot_disk_size_gb >= 50
    error_message = "boot_disk_size_gb must be at least 50."
  }
}

variable "boot_disk_type" {
  description = "Boot disk type."
  type        = string
}

variable "max_session_s" {
  description = "Compute Engine max_run_duration of each VM in seconds: the VM is stopped after running this long, whatever the control plane does."
  type        = number

  validation {
    condition     = var.max_session_s >= 600 && var.max_session_s <= 604800
    error_message = "max_session_s must be between 600 and 604800."
  }
}

variable "enable_secure_boot" {
  description = "Shielded VM Secure Boot."
  type        = bool
  default     = true
}

variable "network" {
  description = "Network self link or name."
  type        = string
}

variable "subnetwork" {
  description = "Subnetwork self link or name (with Private Google Access). null for auto-mode networks."
  type        = string
  default     = null
}

variable "network_tags" {
  description = "Network tags of the VMs (firewall targets)."
  type        = list(string)
  default     = []
}

variable "service_account_email" {
  description = "Service account the VMs run as."
  type        = string
}

variable "labels" {
  description = "Labels of the VMs and their boot disks (must include the pool label)."
  type        = map(string)
}

variable "metadata" {
  description = "Instance metadata (agent configuration, startup script, ...)."
  type        = map(string)
}

variable "operator_role" {
  description = "Role (custom role name) granted to operator_member on each VM."
  type        = string
}

variable "operator_member" {
  description = "IAM member that may get, start and stop the VMs (the control plane)."
  type        = string
}

variable "queue_threshold" {
  description = "The alert fires when the work subscription's backlog stays at or above this many messages for 60 s."
  type        = number

  validation {
    condition     = var.queue_threshold >= 1
    error_message = "queue_threshold must be at least 1."
  }
}

variable "work_subscription" {
  description = "Subscription ID whose backlog (num_undelivered_messages) is watched."
  type        = string
}

variable "notification_channel" {
  description = "Notification channel (Pub/Sub, the queue topic) of the alert policy."
  type        = string
}

variable "alert_user_labels" {
  description = "Extra user labels of the alert policy (yoyo_pool is always set)."
  type        = map(string)
  default     = {}
}

variable "queue_renotify_s" {
  description = "Seconds between repeated notifications while the pool's backlog alert stays open (the control plane forgets a queue depth nobody refreshes)."
  type        = number
  default     = 1800

  validation {
    condition     = var.queue_renotify_s >= 60 && floor(var.queue_renotify_s) == var.queue_renotify_s
    error_message = "queue_renotify_s must be a whole number of seconds, at least 60."
  }
}
