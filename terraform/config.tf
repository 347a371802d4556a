# The control plane's configuration (shared/yoyo_control/config.py) from the variables
# alone. main.tf completes it with what only exists once created (the project, the
# budgets, the batch bucket) and every function reads it from YOYO_CONFIG.
#
# Only var.* and local values defined here: tests/infra/test_config_reference.py applies
# this file with variables.tf to hold both to the configuration schema (every setting
# exposed, same defaults, same limits).

locals {
  # Every VM of every pool, "<prefix>-<pool>-<n>": instance_count spot VMs in the pool's
  # zone, or, when `instances` is set, one VM per entry in its own zone, with its own price
  # and provisioning. The control plane's configuration gets the same objects.
  pool_placements = {
    for pool, p in var.pools : pool => (
      length(p.instances) > 0
      ? [for i, x in p.instances : {
        name             = "${var.prefix}-${pool}-${i}"
        zone             = coalesce(x.zone, p.zone)
        hourly_price_usd = coalesce(x.hourly_price_usd, p.hourly_price_usd)
        provisioning     = x.provisioning
      }]
      : [for i in range(p.instance_count) : {
        name             = "${var.prefix}-${pool}-${i}"
        zone             = p.zone
        hourly_price_usd = p.hourly_price_usd
        provisioning     = "spot"
      }]
    )
  }

  # Attributes of var.pools, var.gateway and var.batch that shape the deployment (VMs,
  # agent, functions, buckets) rather than the control plane. Every other attribute is a
  # setting of the same name in the configuration.
  deployment_only = {
    pools   = ["image", "instance_count", "machine_type", "gpu_type", "gpu_count", "boot_disk_size_gb", "boot_disk_type", "weights_prefix", "heartbeat_interval_s", "idle_shutdown_s", "deadman_grace_s"]
    gateway = ["timeout_s", "max_instances", "memory_mib", "min_instances"]
    batch   = ["retention_days"]
  }

  # The gateway function's memory (gateway.tf), from its concurrency unless
  # gateway.memory_mib is set: 256 MiB for the interpreter and libraries plus 1 MiB per
  # request it may hold (a thread and its buffers; bodies are read in bounded chunks),
  # rounded up to 256 MiB, at most 4 GiB (one vCPU's limit). An estimate, not a
  # measurement (docs/deploy.md, "What is not verified without a cloud account").
  gateway_memory_mib = coalesce(var.gateway.memory_mib, min(4096, ceil((256 + var.gateway.concurrency) / 256) * 256))

  # Null attributes are left out: the control plane then applies its own default (a
  # pool without model serves its own name, one without cycle gets the default window).
  settings = {
    backend            = "gcp"
    region             = var.region
    firestore_database = var.firestore_database
    topic_prefix       = var.prefix
    timezone           = var.timezone
    event_ttl_days     = var.event_ttl_days
    tick_cron          = var.tick_cron
    heartbeat_audience = var.heartbeat_audience
    budget = {
      kill_fraction   = var.budget.kill_fraction
      kill_thresholds = var.budget.kill_thresholds
      forecast_kill   = var.budget.forecast_kill
    }
    caps    = var.caps
    gateway = { for k, v in var.gateway : k => v if !contains(local.deployment_only.gateway, k) }
    batch   = { for k, v in var.batch : k => v if !contains(local.deployment_only.batch, k) }
    fanout  = var.fanout
    pools = {
      for pool, p in var.pools : pool => merge(
        { for k, v in p : k => v if v != null && !contains(local.deployment_only.pools, k) },
        { instances = local.pool_placements[pool] },
      )
    }
  }
}
