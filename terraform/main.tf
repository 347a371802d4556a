# Yo-Yo: the serverless control plane and the GPU pools it starts and stops.
# Split by concern: pubsub.tf, functions.tf, scheduler.tf, firestore.tf, budget.tf,
# monitoring.tf, compute.tf (modules/pool), network.tf, storage.tf, iam.tf.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  project_number     = data.google_project.this.number
  firestore_location = coalesce(var.firestore_location, var.region)
  tick_schedule      = "* * * * *"

  # Every instance of every pool: "<prefix>-<pool>-<n>" (compute.tf: pool_placements).
  pool_instances = {
    for pool, ps in local.pool_placements : pool => [for x in ps : x.name]
  }

  budget_ids = concat(
    [for b in google_billing_budget.this : element(split("/", b.name), 3)],
    var.budget.extra_budget_ids,
  )

  # The one configuration every function reads from the YOYO_CONFIG environment variable.
  control_config = {
    backend            = "gcp"
    project            = var.project_id
    region             = var.region
    firestore_database = var.firestore_database
    topic_prefix       = var.prefix
    timezone           = var.timezone
    event_ttl_days     = var.event_ttl_days
    tick_cron          = local.tick_schedule
    budget = {
      budget_ids      = local.budget_ids
      kill_fraction   = var.budget.kill_fraction
      kill_thresholds = var.budget.kill_thresholds
      forecast_kill   = var.budget.forecast_kill
    }
    caps = {
      daily_usd   = var.caps.daily_usd
      monthly_usd = var.caps.monthly_usd
    }
    gateway = {
      hold_s             = var.gateway.hold_s
      max_held           = var.gateway.max_held
      max_body_bytes     = var.gateway.max_body_bytes
      max_file_bytes     = var.gateway.max_file_bytes
      poll_s             = var.gateway.poll_s
      upstream_timeout_s = var.gateway.upstream_timeout_s
    }
    batch = local.batch_config
    pools = {
      for pool, p in var.pools : pool => merge(
        {
          zone              = p.zone
          instances         = local.pool_placements[pool]
          hourly_price_usd  = p.hourly_price_usd
          fallback_after_s  = p.fallback_after_s
          zone_backoff_s    = p.zone_backoff_s
          idle_timeout_s    = p.idle_timeout_s
          heartbeat_gap_s   = p.heartbeat_gap_s
          boot_grace_s      = p.boot_grace_s
          max_session_s     = p.max_session_s
          lease_s           = p.lease_s
          max_lease_s       = p.max_lease_s
          restart_budget    = p.restart_budget
          restart_backoff_s = p.restart_backoff_s
          queue_threshold   = p.queue_threshold
          daily_cap_usd     = p.daily_cap_usd
          monthly_cap_usd   = p.monthly_cap_usd
        },
        # "model" only for pools that name one (a pool without one serves its own name).
        { for k, m in { model = p.model } : k => m if m != null },
        # "cycle" only for pools that have one (the configuration rejects a null cycle).
        { for k, c in { cycle = p.cycle } : k => c if c != null },
      )
    }
  }
}

# --- APIs --------------------------------------------------------------------------

locals {
  apis = toset([
    "artifactregistry.googleapis.com",
    "billingbudgets.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? local.apis : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
