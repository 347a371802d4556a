# The gateway: the OpenAI-compatible HTTP function (entry point "gateway") that routes
# requests to the pools' VMs on their internal addresses, waking a cold pool and holding
# the request through the cold start (README "Gateway", docs/deploy.md "The gateway").
#
# - Direct VPC egress puts the function's outbound traffic into the gateway's own
#   subnetwork (network.tf); the firewall rule below admits ONLY that subnetwork's range
#   to the VMs' port 8000 (Direct VPC egress supports no network tags or service identity
#   in ingress rules). vLLM's key guards only its /v1... routes, so this rule, not the
#   key, is what keeps everyone else off vLLM.
# - Callers authenticate with a bearer key. The gateway reads only SHA-256 digests of the
#   keys, from a Secret Manager secret mounted as the variable YOYO_GATEWAY_KEY_SHA256.
# - Both secrets are created empty: add their versions once (docs/deploy.md).
# - It runs as its own service account with the least it needs (below); the control
#   plane's account (datastore.user, Compute) is not its.

locals {
  # Direct VPC egress takes the network's and subnetwork's names (not self links).
  gateway_network = local.create_network ? google_compute_network.vms[0].name : reverse(split("/", var.network))[0]
}

# gateway_keys: SHA-256 digests of the callers' keys; vllm_api_key: vLLM's --api-key.
resource "google_secret_manager_secret" "gateway" {
  for_each = {
    gateway_keys = "${var.prefix}-gateway-key-sha256"
    vllm_api_key = "${var.prefix}-vllm-api-key"
  }

  project   = var.project_id
  secret_id = each.value
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "gateway_reads_keys" {
  for_each = google_secret_manager_secret.gateway

  project   = var.project_id
  secret_id = each.value.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.gateway.email}"
}

resource "google_cloudfunctions2_function" "gateway" {
  #checkov:skip=CKV_GCP_124:The gateway is an API endpoint for applications: it authenticates every request itself (hashed bearer keys); set gateway_allow_unauthenticated = false to also require IAM.
  project     = var.project_id
  location    = var.region
  name        = "${var.prefix}-${local.entry_gateway}"
  description = "Yo-Yo gateway: OpenAI-compatible endpoint (HTTP, bearer keys)"
  labels      = var.labels

  build_config {
    runtime         = var.python_runtime
    entry_point     = local.entry_gateway
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = local.function_source.bucket
        object = local.function_source.object
      }
    }
  }

  service_config {
    # Its own memory, timeout and concurrency (not the event functions' 512 MiB / 120 s).
    # Cloud Functions exposes no startup probe (service_config has none): a fresh
    # instance's Direct VPC connection can take a minute or more to come up
    # (https://cloud.google.com/run/docs/configuring/vpc-direct-vpc, "Limitations"), so
    # min_instances keeps instances warm when that minute matters (docs/deploy.md).
    available_memory                 = "${local.gateway_memory_mib}Mi"
    available_cpu                    = "1"
    timeout_seconds                  = var.gateway.timeout_s
    min_instance_count               = var.gateway.min_instances
    max_instance_count               = var.gateway.max_instances
    max_instance_request_concurrency = var.gateway.concurrency
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.gateway.email
    # The gateway is an ASGI function (functions_framework.aio): functions-framework serves
    # it with uvicorn workers, which hold requests as tasks, not threads (THREADS is
    # gunicorn's gthread setting and does not apply).
    environment_variables = local.function_env
    direct_vpc_egress     = "VPC_EGRESS_PRIVATE_RANGES_ONLY"

    direct_vpc_network_interface {
      network    = local.gateway_network
      subnetwork = local.gateway_subnetwork_name
    }

    secret_environment_variables {
      key        = local.env_gateway_key_sha256
      project_id = var.project_id
      secret     = google_secret_manager_secret.gateway["gateway_keys"].secret_id
      version    = "latest"
    }

    secret_environment_variables {
      key        = local.env_vllm_api_key
      project_id = var.project_id
      secret     = google_secret_manager_secret.gateway["vllm_api_key"].secret_id
      version    = "latest"
    }
  }

  depends_on = [
    google_project_iam_member.build,
    google_project_iam_member.gateway_firestore_reader,
    google_secret_manager_secret_iam_member.gateway_reads_keys,
  ]
}

# Plain OpenAI clients put the gateway key in Authorization, so Cloud Run's IAM check
# must not require an identity token there: the gateway authenticates every request.
# Cloud Run's documented ways (https://cloud.google.com/run/docs/authenticating/public):
# disable the invoker IAM check (recommended, and the one that works under the Domain
# restricted sharing organization policy, which refuses allUsers), or grant allUsers the
# invoker role. google_cloudfunctions2_function has no field for the former, so with
# gateway_public_access = "invoker_check_disabled" Terraform grants nothing and the
# operator disables the check once (output gateway_public_access_command).
resource "google_cloud_run_v2_service_iam_member" "gateway_public" {
  count = var.gateway_allow_unauthenticated && var.gateway_public_access == "allusers_binding" ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.gateway.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "gateway_invoker" {
  for_each = var.gateway_allow_unauthenticated ? toset([]) : toset(var.gateway_invokers)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.gateway.name
  role     = "roles/run.invoker"
  member   = each.value
}

# Only the gateway reaches vLLM on port 8000: its subnetwork's whole range, the only form
# of source Direct VPC egress supports ("network tags or service identity in ingress
# firewall rules" are not, https://cloud.google.com/run/docs/configuring/vpc-direct-vpc).
resource "google_compute_firewall" "gateway_to_inference" {
  project       = var.project_id
  name          = "${var.prefix}-allow-gateway-inference"
  network       = local.network
  direction     = "INGRESS"
  source_ranges = [local.gateway_source_range]
  target_tags   = ["${var.prefix}-gpu"]

  allow {
    protocol = "tcp"
    ports    = ["8000"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

output "gateway_url" {
  description = "Base URL for OpenAI clients: OpenAI(base_url=<this>, api_key=<a gateway key>)."
  value       = "${google_cloudfunctions2_function.gateway.url}/v1"
}

output "gateway_public_access_command" {
  description = "With gateway_public_access = \"invoker_check_disabled\": the command that makes the gateway public without allUsers (run once after the first apply). Otherwise null."
  value       = var.gateway_allow_unauthenticated && var.gateway_public_access == "invoker_check_disabled" ? "gcloud run services update ${google_cloudfunctions2_function.gateway.name} --project ${var.project_id} --region ${var.region} --no-invoker-iam-check" : null
}

# --- the gateway's identity: read state, record a wake, nothing else ----------------
#
# It may: read the control plane's Firestore database (roles/datastore.viewer, that
# database only: Firestore IAM cannot narrow to documents, and it cannot write any, so it
# cannot touch the kill switch); publish to the queue topic (a pool's wake) and the work
# topic (a batch's shards) only, not the control topic (operator commands: kill, unkill,
# start, stop); read and write the batch bucket's objects (uploads, batch inputs, results)
# and no other bucket's; read its two secrets; sign its own blobs (signed download URLs);
# invoke its own service (Direct VPC egress asks for it). It holds no Compute role: it
# cannot start or stop a VM. tests/infra/test_cloud_path.py proves the list.
#
# The gateway code does not fit this account yet (docs/deploy.md, "The gateway's
# account and today's gateway code"): its wake still goes through Service.handle, which
# writes the pool document AND starts the VMs through Compute Engine itself, and batch
# create/cancel and cold-start events write Firestore. gateway_store_writes covers the
# Firestore writes only; it does not make the wake work (the start's 403 parks the VM).

resource "google_service_account" "gateway" {
  project      = var.project_id
  account_id   = "${var.prefix}-gateway"
  display_name = "Yo-Yo gateway (OpenAI-compatible endpoint): read state, record wakes"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "gateway_firestore_reader" {
  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = "serviceAccount:${google_service_account.gateway.email}"

  condition {
    title       = "control-plane-database-only"
    description = "Only the Yo-Yo control plane's Firestore database."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""
  }
}

# The escape hatch, off by default. The gateway publishes its wakes, load reports and
# cold starts to PREFIX-queue (gateway/wire.py) and writes no pool or event document.
# Only the batch API still writes Firestore from the gateway: batch records on
# POST /v1/batches and its cancel (reads never write: the batch controller moves a
# batch forward). Those need roles/datastore.user, and with it the gateway
# could write any document of the database, the kill switch included (Firestore IAM
# cannot narrow to documents). roles/datastore.viewer alone still begins transactions
# and commits empty ones (datastore.databases.get: "Begin or rollback a transaction.
# Commit with empty mutations.", cloud.google.com/datastore/docs/access/iam), which is
# all a read of a batch asks.
resource "google_project_iam_member" "gateway_store_writer" {
  count = var.gateway_store_writes ? 1 : 0

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.gateway.email}"

  condition {
    title       = "control-plane-database-only"
    description = "Only the Yo-Yo control plane's Firestore database."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""
  }
}

resource "google_pubsub_topic_iam_member" "gateway_publisher" {
  for_each = {
    queue = google_pubsub_topic.event["queue"].name # a pool's wake
    work  = google_pubsub_topic.work.name           # a batch's shards (POST /v1/batches)
    batch = google_pubsub_topic.batch.name          # the batch controller's nudge (submit, cancel)
  }

  project = var.project_id
  topic   = each.value
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.gateway.email}"
}

# objectUser: create, read, overwrite and delete objects of this bucket only.
resource "google_storage_bucket_iam_member" "gateway_batch_objects" {
  bucket = google_storage_bucket.batch.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.gateway.email}"
}

# Signed download URLs without a key file: the client library signs through the IAM
# Credentials signBlob method, which needs iam.serviceAccounts.signBlob on the signing
# account, in roles/iam.serviceAccountTokenCreator
# (https://cloud.google.com/storage/docs/authentication/creating-signatures). Granted on
# its own account only.
resource "google_service_account_iam_member" "gateway_signs_blobs" {
  service_account_id = google_service_account.gateway.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.gateway.email}"
}

# "To authorize Direct VPC egress, ... grant the Cloud Run Invoker (roles/run.invoker)
# role to your function's service account"
# (https://cloud.google.com/functions/docs/running/direct-vpc, "Set up IAM
# permissions"). Granted on the gateway's own service only.
resource "google_cloud_run_v2_service_iam_member" "gateway_self_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.gateway.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.gateway.email}"
}
