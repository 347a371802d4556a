# --- Project and placement ---------------------------------------------------------

variable "project_id" {
  description = "ID of the Google Cloud project everything is deployed into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project ID (6-30 lowercase letters, digits or hyphens)."
  }
}

variable "region" {
  description = "Region of the Cloud Functions, Cloud Scheduler jobs, buckets and subnetwork."
  type        = string
  default     = "us-central1"
}

variable "prefix" {
  description = "Prefix of every resource name. Topics are deployed as \"<prefix>-<suffix>\" (the code's topic_prefix)."
  type        = string
  default     = "yoyo"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,10}[a-z0-9]$", var.prefix))
    error_message = "prefix must be 3-12 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the Google APIs the deployment needs (google_project_service). Turn off when a project factory already does it."
  type        = bool
  default     = true
}

# --- Control plane -----------------------------------------------------------------

variable "timezone" {
  description = "Time zone (IANA name) the control plane uses for daily/monthly spend periods."
  type        = string
  default     = "UTC"
}

variable "event_ttl_days" {
  description = "Days an event-log document is kept before the Firestore TTL policy deletes it."
  type        = number
  default     = 30

  validation {
    condition     = var.event_ttl_days >= 1 && var.event_ttl_days <= 3650 && floor(var.event_ttl_days) == var.event_ttl_days
    error_message = "event_ttl_days must be a whole number between 1 and 3650."
  }
}

variable "tick_cron" {
  description = "Schedule of the tick (Cloud Scheduler, UTC): it must fire every hour of every day, and its longest gap is the spend caps' look-ahead."
  type        = string
  default     = "* * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.tick_cron))) == 5
    error_message = "tick_cron must be a five-field cron expression, e.g. \"* * * * *\"."
  }
}

variable "heartbeat_audience" {
  description = "Audience of the identity token every heartbeat carries; the control plane and the VMs' agents get the same."
  type        = string
  default     = "yoyo-heartbeat"

  validation {
    condition     = length(trimspace(var.heartbeat_audience)) >= 1 && length(var.heartbeat_audience) <= 500
    error_message = "heartbeat_audience must be a non-empty string of at most 500 characters."
  }
}

variable "caps" {
  description = "Spend caps over all pools, in the billing currency, enforced by the control plane from its real-time ledger. null means no cap."
  type = object({
    daily_usd   = optional(number)
    monthly_usd = optional(number)
  })
  default = {}

  validation {
    condition     = (var.caps.daily_usd == null ? true : var.caps.daily_usd >= 0) && (var.caps.monthly_usd == null ? true : var.caps.monthly_usd >= 0)
    error_message = "caps.daily_usd and caps.monthly_usd must not be negative (null: no cap)."
  }
}

# --- Cloud Functions ---------------------------------------------------------------

variable "function_source_zip" {
  description = "Path of the function source archive built by `make package` (build/function-source.zip)."
  type        = string

  validation {
    condition     = endswith(var.function_source_zip, ".zip")
    error_message = "function_source_zip must be the path of a .zip archive."
  }
}

variable "python_runtime" {
  description = "Cloud Functions runtime."
  type        = string
  default     = "python312"

  validation {
    condition     = contains(["python311", "python312"], var.python_runtime)
    error_message = "python_runtime must be python311 or python312."
  }
}

variable "function_memory" {
  description = "Memory of each function instance (Cloud Functions available_memory)."
  type        = string
  default     = "512M"

  validation {
    condition     = contains(["256M", "512M", "1G", "2G", "4G"], var.function_memory)
    error_message = "function_memory must be one of 256M, 512M, 1G, 2G, 4G."
  }
}

variable "function_timeout_s" {
  description = "Timeout of the event-driven functions, in seconds (event functions allow at most 540)."
  type        = number
  default     = 120

  validation {
    condition     = var.function_timeout_s >= 10 && var.function_timeout_s <= 540
    error_message = "function_timeout_s must be between 10 and 540."
  }
}

variable "function_max_instances" {
  description = "Upper bound on concurrently running instances of each function."
  type        = number
  default     = 5

  validation {
    condition     = var.function_max_instances >= 1 && var.function_max_instances <= 100
    error_message = "function_max_instances must be between 1 and 100."
  }
}

variable "function_publish_topics" {
  description = "Extra topic suffixes the functions' service account may publish to (roles/pubsub.publisher on each). The grants the control plane itself needs (the queue topic for batch wakes, the work topic for shards) are made in batch.tf; this adds others."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for t in var.function_publish_topics : contains(["cycle", "tick", "queue", "budget", "heartbeat", "control", "work"], t)])
    error_message = "function_publish_topics may only name the deployment's topics: cycle, tick, queue, budget, heartbeat, control, work."
  }
}

variable "status_page_invokers" {
  description = "IAM members (e.g. \"group:ops@example.com\") allowed to call the authenticated status page. Never allUsers."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.status_page_invokers, "allUsers") && !contains(var.status_page_invokers, "allAuthenticatedUsers")
    error_message = "The status page is authenticated: allUsers and allAuthenticatedUsers are not allowed."
  }
}

variable "status_page_ingress" {
  description = "Ingress of the status page: ALLOW_ALL (reachable with an identity token from anywhere) or ALLOW_INTERNAL_ONLY."
  type        = string
  default     = "ALLOW_ALL"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.status_page_ingress)
    error_message = "status_page_ingress must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

# --- Gateway (gateway.tf) ----------------------------------------------------------

variable "gateway" {
  description = "The gateway: hold_s (how long a request at a cold pool is held), max_held (held requests per instance), max_body_bytes, max_file_bytes (uploads to /v1/files, at most 31934464: the 32 MB request cap less the multipart room), stream_file_bytes (larger file contents are a redirect to a signed URL), file_url_s (that URL's lifetime), poll_s, upstream_timeout_s; see the README's configuration reference. The function's own (Terraform's): timeout_s (request timeout, ≥ hold_s + the longest answer), max_instances, concurrency (requests per instance, also gateway.concurrency in the configuration; max_held, null for 80% of it, fits in it), memory_mib (null: derived from concurrency), min_instances (instances kept warm: Direct VPC's first connection can take a minute)."
  type = object({
    hold_s             = optional(number, 600)
    max_held           = optional(number) # null: 80% of concurrency (GatewaySettings.held_limit)
    max_body_bytes     = optional(number, 8388608)
    max_file_bytes     = optional(number, 31457280)
    stream_file_bytes  = optional(number, 8388608)
    file_url_s         = optional(number, 300)
    poll_s             = optional(number, 1)
    upstream_timeout_s = optional(number, 600)
    timeout_s          = optional(number, 1800)
    max_instances      = optional(number, 10)
    concurrency        = optional(number, 1000)
    memory_mib         = optional(number)
    min_instances      = optional(number, 0)
  })
  default = {}

  # The control plane's own limits (shared/yoyo_control/config.py, GatewaySettings).
  validation {
    condition = alltrue([
      var.gateway.hold_s >= 0, var.gateway.poll_s > 0, var.gateway.upstream_timeout_s > 0,
      alltrue([for n in [coalesce(var.gateway.max_held, 1), var.gateway.max_body_bytes, var.gateway.max_file_bytes, var.gateway.stream_file_bytes, var.gateway.file_url_s] : n >= 1 && floor(n) == n]),
    ])
    error_message = "gateway.hold_s must not be negative, poll_s and upstream_timeout_s must be positive, max_held, max_body_bytes, max_file_bytes, stream_file_bytes and file_url_s whole numbers >= 1."
  }

  # Cloud Run functions: 32 MB per request, 10 MB per streamed response
  # (https://cloud.google.com/functions/quotas); a V4 signed URL lasts at most 7 days.
  validation {
    condition     = var.gateway.max_file_bytes <= 31934464 && var.gateway.stream_file_bytes <= 10000000 && var.gateway.file_url_s <= 604800
    error_message = "gateway.max_file_bytes must be at most 31934464 (the 32 MB request cap less 64 KiB for the multipart envelope), stream_file_bytes at most 10000000 (the streamed response cap), file_url_s at most 604800 (7 days)."
  }

  validation {
    condition     = var.gateway.timeout_s >= var.gateway.hold_s + 60 && var.gateway.timeout_s <= 3600
    error_message = "gateway.timeout_s must be at least hold_s + 60 and at most 3600 (gen2 HTTP functions)."
  }

  # Cloud Run takes at most 1000 concurrent requests per instance
  # (https://cloud.google.com/run/docs/about-concurrency). Every held request occupies one
  # of them (an awaited task on the gateway's event loop, not a thread: the gateway is an
  # ASGI function), so max_held must fit in it: the gateway's own 429 then fires before
  # Cloud Run queues requests.
  validation {
    condition = alltrue([
      var.gateway.concurrency >= 1, var.gateway.concurrency <= 1000, floor(var.gateway.concurrency) == var.gateway.concurrency,
      coalesce(var.gateway.max_held, var.gateway.concurrency) <= var.gateway.concurrency,
    ])
    error_message = "gateway.concurrency must be a whole number within 1..1000 (Cloud Run's limit per instance) and at least max_held."
  }

  # More than 4 GiB needs 2 vCPUs; the gateway has one (https://cloud.google.com/functions/docs/configuring/memory).
  validation {
    condition = alltrue([
      var.gateway.memory_mib == null ? true : try(var.gateway.memory_mib >= 256 && var.gateway.memory_mib <= 4096 && floor(var.gateway.memory_mib) == var.gateway.memory_mib, false),
      var.gateway.min_instances >= 0, floor(var.gateway.min_instances) == var.gateway.min_instances, var.gateway.min_instances <= var.gateway.max_instances,
      var.gateway.max_instances >= 1, floor(var.gateway.max_instances) == var.gateway.max_instances,
    ])
    error_message = "gateway.memory_mib must be null or a whole number within 256..4096; min_instances a whole number within 0..max_instances; max_instances a whole number >= 1."
  }
}

variable "gateway_store_writes" {
  description = "Grant the gateway's account roles/datastore.user on the control plane's database. Off (default): the gateway reads the store and publishes what it has to tell the control plane (wakes, its load, cold starts) to the queue topic; it cannot write Firestore, the kill switch included, and the batch API's records cannot be written (POST /v1/batches and POST /v1/batches/ID/cancel answer 503; reads never write; /v1/files and the OpenAI inference routes do not need it). On: the batch API works, and a compromised gateway could write any document of the database, the kill switch included (Firestore IAM does not narrow to documents)."
  type        = bool
  default     = false
}

variable "gateway_public_access" {
  description = "How the gateway is made public when gateway_allow_unauthenticated is true. \"allusers_binding\": roles/run.invoker for allUsers (refused under the Domain restricted sharing organization policy). \"invoker_check_disabled\": no allUsers grant; disable the Cloud Run invoker IAM check on the gateway's service once (output gateway_public_access_command; docs/deploy.md)."
  type        = string
  default     = "allusers_binding"

  validation {
    condition     = contains(["allusers_binding", "invoker_check_disabled"], var.gateway_public_access)
    error_message = "gateway_public_access must be \"allusers_binding\" or \"invoker_check_disabled\"."
  }
}

variable "gateway_allow_unauthenticated" {
  description = "true: anyone may reach the gateway's URL and the gateway's own bearer keys are the only check (what plain OpenAI clients need). false: callers also need roles/run.invoker (var.gateway_invokers) and send a Google identity token in X-Serverless-Authorization."
  type        = bool
  default     = true
}

variable "gateway_invokers" {
  description = "Principals granted roles/run.invoker on the gateway when gateway_allow_unauthenticated is false (e.g. serviceAccount:app@PROJECT.iam.gserviceaccount.com)."
  type        = list(string)
  default     = []
}

# --- Firestore ---------------------------------------------------------------------

variable "create_firestore_database" {
  description = "Create the Firestore database. Set false when it already exists (a project has one \"(default)\" database at most)."
  type        = bool
  default     = true
}

variable "firestore_database" {
  description = "Firestore database ID the control plane uses."
  type        = string
  default     = "(default)"
}

variable "firestore_location" {
  description = "Firestore location (a region such as us-central1, or a multi-region such as nam5). Permanent once created. null means var.region, and is allowed only when this module creates the database: with create_firestore_database = false, give the existing database's location (the kill-switch trigger must live there)."
  type        = string
  default     = null
}

# --- Budget ------------------------------------------------------------------------

variable "billing_account" {
  description = "Billing account ID (XXXXXX-XXXXXX-XXXXXX) the budget is created on. null skips the budget (then list existing ones in budget.extra_budget_ids)."
  type        = string
  default     = null

  validation {
    condition     = var.billing_account == null || can(regex("^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$", var.billing_account))
    error_message = "billing_account must look like 012345-6789AB-CDEF01."
  }
}

variable "budget" {
  description = <<-EOT
    Cloud Billing budget on this project and how the control plane reacts to its notifications.
    amount: monthly budget in the billing account's currency; alert_thresholds: fractions of the amount that
    send a notification on actual spend; forecast_threshold: fraction on forecasted spend (null: none);
    kill_fraction / kill_thresholds / forecast_kill: when a notification engages the kill switch;
    extra_budget_ids: other budgets whose notifications the control plane also acts on.
  EOT
  type = object({
    amount             = optional(number, 100)
    currency_code      = optional(string)
    alert_thresholds   = optional(list(number), [0.5, 0.9, 1.0])
    forecast_threshold = optional(number, 1.0)
    kill_fraction      = optional(number, 1.0)
    kill_thresholds    = optional(list(number), [1.0])
    forecast_kill      = optional(bool, false)
    extra_budget_ids   = optional(list(string), [])
  })
  default = {}

  validation {
    condition     = var.budget.amount > 0 && floor(var.budget.amount) == var.budget.amount
    error_message = "budget.amount must be a positive whole number."
  }

  validation {
    condition     = length(var.budget.alert_thresholds) > 0 && alltrue([for t in var.budget.alert_thresholds : t > 0 && t <= 10])
    error_message = "budget.alert_thresholds must be a non-empty list of fractions in (0, 10]."
  }

  validation {
    condition     = var.budget.forecast_threshold == null || try(var.budget.forecast_threshold > 0 && var.budget.forecast_threshold <= 10, false)
    error_message = "budget.forecast_threshold must be in (0, 10] or null."
  }

  validation {
    condition     = var.budget.kill_fraction >= 0 && alltrue([for t in var.budget.kill_thresholds : t >= 0])
    error_message = "budget.kill_fraction and budget.kill_thresholds must not be negative."
  }
}

# --- GPU pools ---------------------------------------------------------------------

variable "pools" {
  description = "GPU pools: each is a set of spot VMs the control plane starts only while there is work. See the README's configuration reference for every field."
  type = map(object({
    zone              = string
    image             = string
    instance_count    = optional(number, 1)
    machine_type      = optional(string, "g2-standard-8")
    gpu_type          = optional(string, "nvidia-l4")
    gpu_count         = optional(number, 1)
    boot_disk_size_gb = optional(number, 200)
    boot_disk_type    = optional(string, "pd-balanced")
    hourly_price_usd  = number
    weights_prefix    = optional(string)
    model             = optional(string) # the model name the gateway routes to this pool

    # Capacity: when set, one VM per entry (instead of instance_count in `zone`), each in
    # its own zone with its own weights disk; zone and price default to the pool's.
    instances = optional(list(object({
      zone             = optional(string)
      hourly_price_usd = optional(number)
      provisioning     = optional(string, "spot")
    })), [])
    fallback_after_s   = optional(number, 60)
    zone_backoff_s     = optional(number, 60)
    zone_backoff_max_s = optional(number, 1800)

    keepalive           = optional(string, "adaptive")
    idle_timeout_s      = optional(number, 900)
    keepalive_max_s     = optional(number, 900)
    boot_s              = optional(number, 150)
    wait_weight         = optional(number, 5)
    prewarm_budget_min  = optional(number, 40) # README "History and pre-warm"; 0: off
    prewarm_hold_s      = optional(number, 900)
    heartbeat_gap_s     = optional(number, 180)
    boot_grace_s        = optional(number, 300)
    max_session_s       = optional(number, 14400)
    lease_s             = optional(number, 1800)
    max_lease_s         = optional(number, 28800)
    restart_budget      = optional(number, 3)
    restart_backoff_s   = optional(number, 60)
    queue_threshold     = optional(number, 1)
    action_retry_s      = optional(number, 60)
    max_action_attempts = optional(number, 5)
    daily_cap_usd       = optional(number)
    monthly_cap_usd     = optional(number)

    # Scaling on load (README "Scaling on load").
    max_num_seqs         = optional(number, 256)
    scale_target         = optional(number, 0)
    scale_window_s       = optional(number, 30)
    scale_backlog_weight = optional(number, 0.5)

    cycle = optional(object({
      cron      = string
      time_zone = optional(string, "Etc/UTC")
      window_s  = optional(number, 1800)
    }))

    heartbeat_interval_s = optional(number, 30)
    idle_shutdown_s      = optional(number)
    deadman_grace_s      = optional(number)
  }))

  validation {
    condition     = length(var.pools) > 0 && alltrue([for name, _ in var.pools : can(regex("^[a-z][a-z0-9-]{0,30}$", name))])
    error_message = "Define at least one pool; pool names are 1-31 lowercase letters, digits or hyphens, starting with a letter."
  }

  # A VM's subnetwork must be in the VM's region, and the deployment has one VM subnetwork,
  # in var.region (the gateway's Direct VPC egress is regional too). A zone is
  # "<region>-<letter>" (https://cloud.google.com/compute/docs/regions-zones).
  validation {
    condition = alltrue(flatten([for p in values(var.pools) : [
      for z in concat([p.zone], [for i in p.instances : i.zone if i.zone != null]) : try(regex("^(.+)-[a-z]$", z)[0] == var.region, false)
    ]]))
    error_message = "Every pool's zone (and each instances[].zone) must be in var.region: the VMs share one subnetwork there. Deploy another root module per region for pools elsewhere."
  }

  validation {
    condition     = alltrue([for p in values(var.pools) : p.instance_count >= 1 && p.instance_count <= 16 && floor(p.instance_count) == p.instance_count])
    error_message = "instance_count must be a whole number between 1 and 16."
  }

  validation {
    condition = alltrue([for p in values(var.pools) : length(p.instances) <= 16 && alltrue([
      for i in p.instances : contains(["spot", "standard"], i.provisioning) && (i.hourly_price_usd == null ? true : i.hourly_price_usd >= 0)
    ])])
    error_message = "instances: at most 16 per pool; provisioning must be \"spot\" or \"standard\"; prices must not be negative."
  }

  validation {
    condition     = alltrue([for p in values(var.pools) : p.gpu_count >= 0 && contains([0, 1, 2, 4, 8], p.gpu_count)])
    error_message = "gpu_count must be 0, 1, 2, 4 or 8."
  }

  # The control plane's own limits (shared/yoyo_control/config.py, PoolSettings).
  validation {
    condition = alltrue([for p in values(var.pools) : alltrue([
      p.hourly_price_usd >= 0, p.idle_timeout_s >= 0, p.keepalive_max_s >= 0, p.boot_s >= 0,
      p.wait_weight >= 0, p.heartbeat_gap_s >= 0, p.boot_grace_s >= 0, p.lease_s >= 0,
      p.max_lease_s >= p.lease_s, p.restart_backoff_s >= 0, p.action_retry_s >= 0,
      p.zone_backoff_s >= 0, p.zone_backoff_max_s >= 0, p.fallback_after_s >= 0,
      p.scale_target >= 0, p.scale_window_s >= 0,
      p.scale_backlog_weight >= 0, p.scale_backlog_weight <= 1,
      p.prewarm_budget_min >= 0, p.prewarm_budget_min <= 1440, p.prewarm_hold_s >= 0,
      p.daily_cap_usd == null ? true : p.daily_cap_usd >= 0,
      p.monthly_cap_usd == null ? true : p.monthly_cap_usd >= 0,
    ])])
    error_message = "Pool durations, prices, caps, wait_weight and the scaling and pre-warm settings must not be negative; scale_backlog_weight is at most 1, prewarm_budget_min at most 1440 (a day); max_lease_s must be at least lease_s."
  }

  validation {
    condition = alltrue([for p in values(var.pools) : alltrue([
      for n in [p.restart_budget, p.max_action_attempts, p.queue_threshold - 1, p.max_num_seqs - 1] : n >= 0 && floor(n) == n
    ])])
    error_message = "restart_budget and max_action_attempts must be whole numbers >= 0, queue_threshold and max_num_seqs whole numbers >= 1."
  }

  validation {
    condition     = alltrue([for p in values(var.pools) : contains(["fixed", "break-even", "adaptive"], p.keepalive)])
    error_message = "keepalive must be fixed, break-even or adaptive."
  }

  validation {
    condition     = alltrue([for p in values(var.pools) : p.heartbeat_interval_s >= 5])
    error_message = "heartbeat_interval_s (the agent's) must be at least 5."
  }

  validation {
    condition     = alltrue([for p in values(var.pools) : p.max_session_s >= 600 && p.max_session_s <= 604800 && floor(p.max_session_s) == p.max_session_s])
    error_message = "max_session_s (also the VM's Compute Engine max_run_duration) must be a whole number between 600 and 604800."
  }

  validation {
    condition     = alltrue([for p in values(var.pools) : p.cycle == null || try(p.cycle.window_s >= 60 && p.cycle.window_s % 60 == 0, false)])
    error_message = "cycle.window_s must be a positive multiple of 60 seconds."
  }

  validation {
    condition     = alltrue([for p in values(var.pools) : p.cycle == null || try(length(split(" ", trimspace(p.cycle.cron))) == 5, false)])
    error_message = "cycle.cron must be a five-field cron expression, e.g. \"0 2 * * *\"."
  }

  validation {
    condition     = alltrue([for p in values(var.pools) : contains(["pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced"], p.boot_disk_type)])
    error_message = "boot_disk_type must be pd-standard, pd-balanced, pd-ssd or hyperdisk-balanced."
  }
}

# --- VM network and image ---------------------------------------------------------

variable "network" {
  description = "Existing VPC network (name or self link) for the GPU VMs. null creates a dedicated network and subnetwork with Private Google Access."
  type        = string
  default     = null
}

variable "subnetwork" {
  description = "Existing subnetwork (name or self link) in var.region, used with var.network. It must have Private Google Access: the VMs have no external IP."
  type        = string
  default     = null
}

variable "subnetwork_cidr" {
  description = "IP range of the subnetwork created when var.network is null."
  type        = string
  default     = "10.20.0.0/24"

  validation {
    condition     = can(cidrhost(var.subnetwork_cidr, 0))
    error_message = "subnetwork_cidr must be a CIDR range."
  }
}

variable "allow_iap_ssh" {
  description = "Create a firewall rule letting IAP TCP forwarding reach the VMs on port 22 (only on the network this module creates)."
  type        = bool
  default     = false
}

variable "enable_secure_boot" {
  description = "Shielded VM Secure Boot. Needs a signed NVIDIA kernel module (vm/image/build-image.sh installs Ubuntu's signed one)."
  type        = bool
  default     = true
}

variable "vm_startup_script" {
  description = "Startup script of the GPU VMs. null uses vm/startup.sh from this repository."
  type        = string
  default     = null
}

variable "weights_bucket_name" {
  description = "Name of the model-weights bucket to create. null derives \"<project>-<prefix>-weights\"."
  type        = string
  default     = null
}

variable "source_bucket_name" {
  description = "Name of the function-source bucket to create. null derives \"<project>-<prefix>-source\"."
  type        = string
  default     = null
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete the buckets with their contents (weights included)."
  type        = bool
  default     = false
}

variable "gateway_subnetwork_cidr" {
  description = "IP range of the gateway's own subnetwork (Direct VPC egress), created when var.network is null. /26 or larger, with 2 addresses per gateway.max_instances (a /26 holds 30); the only range the VMs' port 8000 admits."
  type        = string
  default     = "10.20.1.0/26"

  # Direct VPC egress asks for a /26 or larger subnet
  # (https://cloud.google.com/run/docs/configuring/vpc-direct-vpc, "IP address allocation").
  validation {
    condition     = can(cidrhost(var.gateway_subnetwork_cidr, 0)) && try(tonumber(split("/", var.gateway_subnetwork_cidr)[1]) <= 26, false)
    error_message = "gateway_subnetwork_cidr must be a CIDR range of /26 or larger."
  }

  # Direct VPC egress takes about 2 addresses per instance (Cloud Run networking best
  # practices, "Monitor IP address usage":
  # https://cloud.google.com/run/docs/configuring/networking-best-practices); 4 addresses
  # of a subnet's range are unusable (https://cloud.google.com/vpc/docs/subnets, "Unusable
  # addresses in IPv4 subnet ranges"). A /26 holds 30 gateway instances.
  validation {
    condition     = var.network != null || !can(cidrhost(var.gateway_subnetwork_cidr, 0)) || 2 * var.gateway.max_instances <= pow(2, 32 - try(tonumber(split("/", var.gateway_subnetwork_cidr)[1]), 0)) - 4
    error_message = "gateway_subnetwork_cidr is too small for gateway.max_instances: Direct VPC egress takes about 2 addresses per instance and 4 of the range are unusable (a /26 holds 30 instances, a /24 126)."
  }
}

variable "gateway_subnetwork" {
  description = "With an existing var.network: an existing subnetwork (name or self link) in var.region used by the gateway alone (/26 or larger). Its whole range is admitted to the VMs' port 8000, so nothing else may use it."
  type        = string
  default     = null

  validation {
    condition     = (var.network == null) == (var.gateway_subnetwork == null) && (var.gateway_subnetwork == null || var.gateway_subnetwork != var.subnetwork)
    error_message = "Set gateway_subnetwork exactly when var.network is set: a subnetwork of the existing network in var.region, used by the gateway alone (not var.subnetwork: its whole range reaches vLLM)."
  }
}

variable "batch" {
  description = "Batch inference: the largest input file and most lines per batch, lines per work message, lines a VM's worker runs at once, the work subscriptions' ack deadline (a dead worker's shard comes back after it), and how long batch objects are kept (retention_days: Terraform's own)."
  type = object({
    max_file_bytes = optional(number, 209715200)
    max_lines      = optional(number, 50000)
    shard_lines    = optional(number, 100)
    concurrency    = optional(number, 8)
    ack_deadline_s = optional(number, 60)
    retention_days = optional(number, 30)
    # The batch controller (terraform/batch.tf): cancel grace, republish without progress.
    cancel_grace_s    = optional(number, 120)
    republish_after_s = optional(number, 900)
    max_republish     = optional(number, 4)
  })
  default = {}

  validation {
    condition = (
      var.batch.cancel_grace_s >= 0 && var.batch.republish_after_s >= 60
      && var.batch.max_republish >= 0 && floor(var.batch.max_republish) == var.batch.max_republish
    )
    error_message = "batch.cancel_grace_s must not be negative, republish_after_s at least 60, max_republish a whole number >= 0."
  }

  validation {
    condition = alltrue([
      for n in [var.batch.max_file_bytes, var.batch.max_lines, var.batch.shard_lines, var.batch.concurrency, var.batch.retention_days] : n >= 1 && floor(n) == n
    ])
    error_message = "batch.max_file_bytes, max_lines, shard_lines, concurrency and retention_days must be whole numbers >= 1."
  }

  validation {
    condition     = var.batch.ack_deadline_s >= 10 && var.batch.ack_deadline_s <= 600 && floor(var.batch.ack_deadline_s) == var.batch.ack_deadline_s
    error_message = "batch.ack_deadline_s must be a whole number within 10..600 (Pub/Sub's range)."
  }
}

variable "batch_objects_by_pool" {
  description = "Limit each pool's VMs to the batch objects under \"pools/<pool>/\" (an IAM condition). Needs the batch code to keep a pool's objects there; today it keeps them under \"batches/<id>/\", so the default (false) grants each pool's account the whole batch bucket."
  type        = bool
  default     = false
}

variable "batch_bucket_name" {
  description = "Name of the batch bucket (default: <project>-<prefix>-batch)."
  type        = string
  default     = null
}

# --- The brake and the tick at many pools (shared/yoyo_control/config.py, FanoutSettings) ---

variable "fanout" {
  description = "How much of one event the control plane runs at once: pools (pools a tick or a kill's reconcile works on at once, 1-100) and stops (stop calls a kill has in flight at once, 1-1000); see the README's configuration reference."
  type = object({
    pools = optional(number, 16)
    stops = optional(number, 200)
  })
  default = {}

  validation {
    condition = (
      var.fanout.pools >= 1 && var.fanout.pools <= 100 && floor(var.fanout.pools) == var.fanout.pools
      && var.fanout.stops >= 1 && var.fanout.stops <= 1000 && floor(var.fanout.stops) == var.fanout.stops
    )
    error_message = "fanout.pools must be a whole number within 1..100 and fanout.stops within 1..1000."
  }
}
