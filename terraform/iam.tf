# One service account per role, each with only what that role needs (no primitive
# roles). The table in docs/deploy.md explains every grant.

locals {
  role_prefix = replace(var.prefix, "-", "_")

  pubsub_agent     = google_project_service_identity.agent["pubsub.googleapis.com"].member
  scheduler_agent  = google_project_service_identity.agent["cloudscheduler.googleapis.com"].member
  monitoring_agent = "serviceAccount:service-${local.project_number}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
  billing_agent    = "serviceAccount:billing-budget-alert@system.gserviceaccount.com"
}

# Google creates some service agents lazily, at first use: in a new project the Pub/Sub
# and Cloud Scheduler agents may not exist yet when they are granted roles below
# ("service account ... does not exist"). Creating them explicitly removes the race.
resource "google_project_service_identity" "agent" {
  provider = google-beta
  for_each = toset(["pubsub.googleapis.com", "cloudscheduler.googleapis.com"])

  project = var.project_id
  service = each.value

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "functions" {
  project      = var.project_id
  account_id   = "${var.prefix}-functions"
  display_name = "Yo-Yo control plane (Cloud Functions runtime)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "eventarc" {
  project      = var.project_id
  account_id   = "${var.prefix}-eventarc"
  display_name = "Yo-Yo Eventarc triggers (invoke the control-plane functions)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.prefix}-scheduler"
  display_name = "Yo-Yo Cloud Scheduler jobs (publish cycle and tick)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "vm" {
  project      = var.project_id
  account_id   = "${var.prefix}-vm-agent"
  display_name = "Yo-Yo VM image builds (build-image.sh)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.prefix}-fn-build"
  display_name = "Yo-Yo function builds (Cloud Build)"
  depends_on   = [google_project_service.apis]
}

# --- Custom roles: Compute Engine power control, nothing else ----------------------

# Granted on each pool instance only (modules/pool): read, start and stop that VM.
resource "google_project_iam_custom_role" "instance_operator" {
  project     = var.project_id
  role_id     = "${local.role_prefix}_instance_operator"
  title       = "Yo-Yo instance operator"
  description = "Get, start and stop one Yo-Yo GPU VM; granted per instance."
  permissions = [
    "compute.instances.get",
    "compute.instances.start",
    "compute.instances.stop",
  ]
}

# Project-level, because these permissions only work there: poll the zonal operations
# that start/stop return, and list instances by the pool label to find orphans (VMs
# labelled for a pool but missing from its configuration).
#
# Least privilege, and why not less: compute.instances.list cannot be narrowed by an IAM
# condition (a list is authorised on the project, before any instance name or label is
# known), and a listed instance carries its metadata, so this account can read the
# startup scripts of every VM in the project. The control plane's own code lists with
# the pool label filter and keeps only status and labels; deploy Yo-Yo in a project of
# its own (docs/deploy.md) so no other application's VMs are in reach.
resource "google_project_iam_custom_role" "control_plane" {
  project     = var.project_id
  role_id     = "${local.role_prefix}_control_plane"
  title       = "Yo-Yo control plane"
  description = "Poll Compute Engine zone operations and list instances (project-level only permissions)."
  permissions = [
    "compute.instances.list",
    "compute.zoneOperations.get",
  ]
}

# --- Functions runtime -------------------------------------------------------------

resource "google_project_iam_member" "functions_project" {
  for_each = {
    firestore = "roles/datastore.user"
    compute   = google_project_iam_custom_role.control_plane.name
  }

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.functions.email}"
}

resource "google_pubsub_topic_iam_member" "functions_publisher" {
  for_each = toset(var.function_publish_topics)

  project = var.project_id
  topic   = each.value == local.topic_work ? google_pubsub_topic.work.name : google_pubsub_topic.event[each.value].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.functions.email}"
}

# --- Eventarc triggers -------------------------------------------------------------

# Needed for the Firestore (direct-event) trigger; run.invoker is per function (functions.tf).
resource "google_project_iam_member" "eventarc_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.eventarc.email}"
}

# Pub/Sub signs the push requests to the functions with the trigger's identity.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.eventarc.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# --- Cloud Scheduler ---------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "scheduler_publisher" {
  for_each = toset(["cycle", "tick"])

  project = var.project_id
  topic   = google_pubsub_topic.event[each.value].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.scheduler.email}"
}

# Cloud Scheduler mints the jobs' OAuth tokens as the scheduler service account.
resource "google_service_account_iam_member" "scheduler_token_creator" {
  service_account_id = google_service_account.scheduler.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.scheduler_agent
}

# --- VM image builds -----------------------------------------------------------------

# The pools' VMs run as their pool's own account (pool_iam.tf). This account is the image
# builder's (vm/image/build-image.sh --service-account): it reads the weights bucket
# (the staging prefix) and writes logs and metrics, nothing else.
resource "google_project_iam_member" "vm_project" {
  for_each = {
    logs    = "roles/logging.logWriter"
    metrics = "roles/monitoring.metricWriter"
  }

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.vm.email}"
}

resource "google_storage_bucket_iam_member" "vm_weights_reader" {
  bucket = google_storage_bucket.weights.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.vm.email}"
}

# --- Function builds (Cloud Build) -------------------------------------------------

resource "google_project_iam_member" "build" {
  for_each = {
    logs      = "roles/logging.logWriter"
    artifacts = "roles/artifactregistry.writer"
  }

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}

# Cloud Functions stages the source in its own "gcf-v2-*" buckets; the build reads and
# writes there only.
resource "google_project_iam_member" "build_staging" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "gcf-v2-buckets-only"
    description = "Only the Cloud Functions staging buckets."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-\")"
  }
}

resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

# --- Google service agents ---------------------------------------------------------

# Pub/Sub moves undeliverable work-queue messages to the dead-letter topic.
resource "google_pubsub_topic_iam_member" "pubsub_dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

# Cloud Billing publishes budget notifications as this Google-managed principal.
resource "google_pubsub_topic_iam_member" "budget_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.event["budget"].name
  role    = "roles/pubsub.publisher"
  member  = local.billing_agent
}

# Cloud Monitoring publishes alert incidents to the queue topic. Its service agent
# exists once the first Pub/Sub notification channel does.
resource "google_pubsub_topic_iam_member" "monitoring_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.event["queue"].name
  role    = "roles/pubsub.publisher"
  member  = local.monitoring_agent

  depends_on = [google_monitoring_notification_channel.queue]
}
