# The GPU VMs have no external IP. They reach Google APIs (Pub/Sub, Firestore, Cloud
# Storage) through Private Google Access on their subnetwork. Unless var.network names
# an existing network, a dedicated one is created here.

locals {
  create_network = var.network == null
  network        = local.create_network ? google_compute_network.vms[0].self_link : var.network
  subnetwork     = local.create_network ? google_compute_subnetwork.vms[0].self_link : var.subnetwork

  # The gateway's own subnetwork (Direct VPC egress) and its range, the only source the
  # VMs' port 8000 admits (gateway.tf).
  gateway_subnetwork_name = local.create_network ? google_compute_subnetwork.gateway[0].name : reverse(split("/", var.gateway_subnetwork))[0]
  gateway_source_range    = local.create_network ? google_compute_subnetwork.gateway[0].ip_cidr_range : data.google_compute_subnetwork.gateway[0].ip_cidr_range
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

# The gateway's subnetwork. Cloud Run's Direct VPC egress does not support "network tags
# or service identity in ingress firewall rules" and its addresses are ephemeral: a rule
# that admits the gateway must name the whole subnet's range, and the page asks for a
# /26 or larger subnet (https://cloud.google.com/run/docs/configuring/vpc-direct-vpc,
# "Limitations" and "IP address allocation"). A subnetwork of its own makes that range
# the gateway's alone: nothing else in the VPC can sit in it and reach vLLM.
resource "google_compute_subnetwork" "gateway" {
  count = local.create_network ? 1 : 0

  project                  = var.project_id
  name                     = "${var.prefix}-gateway"
  region                   = var.region
  network                  = google_compute_network.vms[0].id
  ip_cidr_range            = var.gateway_subnetwork_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.1
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# With an existing network, the gateway's subnetwork is var.gateway_subnetwork (in
# var.region, dedicated to the gateway): its range is read here for the firewall rule.
data "google_compute_subnetwork" "gateway" {
  count = local.create_network ? 0 : 1

  project   = var.project_id
  region    = var.region
  self_link = startswith(var.gateway_subnetwork, "https://") ? var.gateway_subnetwork : null
  name      = startswith(var.gateway_subnetwork, "https://") ? null : reverse(split("/", var.gateway_subnetwork))[0]
}
