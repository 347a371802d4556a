# The GPU VMs have no external IP. They reach Google APIs (Pub/Sub, Firestore, Cloud
# Storage) through Private Google Access on their subnetwork. Unless var.network names
# an existing network, a dedicated one is created here.

locals {
  create_network = var.network == null
  network        = local.create_network ? google_compute_network.vms[0].self_link : var.network
  subnetwork     = local.create_network ? google_compute_subnetwork.vms[0].self_link : var.subnetwork
}

resource "google_compute_network" "vms" {
  count = local.create_network ? 1 : 0

  project                 = var.project_id
  name                    = "${var.prefix}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.apis]
}

resource "google_compute_subnetwork" "vms" {
  count = local.create_network ? 1 : 0

  project                  = var.project_id
  name                     = "${var.prefix}-vms"
  region                   = var.region
  network                  = google_compute_network.vms[0].id
  ip_cidr_range            = var.subnetwork_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.1
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Optional: SSH through Identity-Aware Proxy TCP forwarding (gcloud compute ssh --tunnel-through-iap).
resource "google_compute_firewall" "iap_ssh" {
  count = local.create_network && var.allow_iap_ssh ? 1 : 0

  project       = var.project_id
  name          = "${var.prefix}-allow-iap-ssh"
  network       = google_compute_network.vms[0].id
  direction     = "INGRESS"
  source_ranges = ["35.235.240.0/20"]
  target_tags   = ["${var.prefix}-gpu"]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Optional: let clients in these ranges reach vLLM's OpenAI API on port 8000.
resource "google_compute_firewall" "inference" {
  count = local.create_network && length(var.inference_source_ranges) > 0 ? 1 : 0

  project       = var.project_id
  name          = "${var.prefix}-allow-inference"
  network       = google_compute_network.vms[0].id
  direction     = "INGRESS"
  source_ranges = var.inference_source_ranges
  target_tags   = ["${var.prefix}-gpu"]

  allow {
    protocol = "tcp"
    ports    = ["8000"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
