terraform {
  # 1.9: a variable's validation may refer to other variables (var.pools' zones must be in
  # var.region; the gateway subnetwork with an existing network). Terraform 1.9.0's
  # changelog, "Input variable validation rules can refer to other objects" (#34955).
  required_version = ">= 1.9"

  # 7.21.0 is the first release whose google_cloudfunctions2_function has
  # service_config.direct_vpc_network_interface and direct_vpc_egress (the gateway's
  # Direct VPC egress): hashicorp/terraform-provider-google
  # google/services/cloudfunctions2/resource_cloudfunctions2_function.go has them at
  # v7.21.0 and not at v7.20.0; CHANGELOG.md 7.21.0 (#26142). It is above 6.10.0, the
  # first release that creates an instance with desired_status = "TERMINATED"
  # (GoogleCloudPlatform/magic-modules#11902). google_project_service_identity is
  # google-beta only.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.21, < 9.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 7.21, < 9.0"
    }
  }
}
