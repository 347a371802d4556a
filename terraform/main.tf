# Yo-Yo: the serverless control plane and the GPU pools it starts and stops.
# Split by concern: pubsub.tf, functions.tf, scheduler.tf, firestore.tf, budget.tf,
# monitoring.tf, compute.tf (modules/pool), network.tf, storage.tf, iam.tf; config.tf
# builds the control plane's configuration from the variables.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  project_number     = data.google_project.this.number
  firestore_location = coalesce(var.firestore_location, var.region)

  # Every instance of every pool: "<prefix>-<pool>-<n>" (config.tf: pool_placements).
  pool_instances = {
    for pool, ps in local.pool_placements : pool => [for x in ps : x.name]
  }

  budget_ids = concat(
    [for b in google_billing_budget.this : element(split("/", b.name), 3)],
    var.budget.extra_budget_ids,
  )

  # The one configuration every function reads from the YOYO_CONFIG environment variable:
  # config.tf's settings and what exists only once created.
  control_config = merge(local.settings, {
    project = var.project_id
    budget  = merge(local.settings.budget, { budget_ids = local.budget_ids })
    batch   = merge(local.settings.batch, { bucket = google_storage_bucket.batch.name })
  })
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
    "iamcredentials.googleapis.com", # signBlob: the gateway's signed download URLs
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
