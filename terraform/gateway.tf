# The gateway: the OpenAI-compatible HTTP function (entry point "gateway") that routes
# requests to the pools' VMs on their internal addresses, waking a cold pool and holding
# the request through the cold start (README "Gateway", docs/deploy.md "The gateway").
#
# - Direct VPC egress puts the function's outbound traffic into the pool subnetwork with
#   the network tag "<prefix>-gateway"; the firewall rule below lets ONLY that tag reach
#   the VMs' port 8000. vLLM also requires its own API key (Secret Manager), which only
#   the gateway and the VMs can read.
# - Callers authenticate with a bearer key. The gateway reads only SHA-256 digests of the
#   keys, from a Secret Manager secret mounted as the variable YOYO_GATEWAY_KEY_SHA256.
# - Both secrets are created empty: add their versions once (docs/deploy.md).

locals {
  gateway_network_tag = "${var.prefix}-gateway"
  # Direct VPC egress takes the network's and subnetwork's names (not self links).
  gateway_network    = local.create_network ? google_compute_network.vms[0].name : reverse(split("/", var.network))[0]
  gateway_subnetwork = local.create_network ? google_compute_subnetwork.vms[0].name : (var.subnetwork == null ? null : reverse(split("/", var.subnetwork))[0])
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
  member    = "serviceAccount:${google_service_account.functions.email}"
}

# The VMs read vLLM's key at boot (vm/startup.sh) and pass it to vllm serve --api-key.
resource "google_secret_manager_secret_iam_member" "vm_reads_vllm_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.gateway["vllm_api_key"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.vm.email}"
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
    available_memory                 = var.function_memory
    available_cpu                    = "1"
    timeout_seconds                  = var.gateway.timeout_s
    max_instance_count               = var.gateway.max_instances
    max_instance_request_concurrency = var.gateway.concurrency
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.functions.email
    # functions-framework's gunicorn runs THREADS threads (default 4 per CPU): a held
    # request occupies one, so the instance needs one per request it may be sent.
    environment_variables = merge(local.function_env, { THREADS = tostring(var.gateway.concurrency) })
    direct_vpc_egress     = "VPC_EGRESS_PRIVATE_RANGES_ONLY"

    direct_vpc_network_interface {
      network    = local.gateway_network
      subnetwork = local.gateway_subnetwork
      tags       = [local.gateway_network_tag]
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
    google_project_iam_member.functions_project,
    google_secret_manager_secret_iam_member.gateway_reads_keys,
  ]
}

# Plain OpenAI clients put the gateway key in Authorization, so Cloud Run's IAM check
# must not require an identity token there: the gateway authenticates every request.
resource "google_cloud_run_v2_service_iam_member" "gateway_public" {
  count = var.gateway_allow_unauthenticated ? 1 : 0

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

# Only the gateway (its Direct VPC egress carries the tag) reaches vLLM on port 8000.
resource "google_compute_firewall" "gateway_to_inference" {
  project     = var.project_id
  name        = "${var.prefix}-allow-gateway-inference"
  network     = local.network
  direction   = "INGRESS"
  source_tags = [local.gateway_network_tag]
  target_tags = ["${var.prefix}-gpu"]

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
