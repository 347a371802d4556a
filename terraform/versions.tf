terraform {
  required_version = ">= 1.5"

  # 6.10.0 is the first release that creates an instance with desired_status = "TERMINATED"
  # (GoogleCloudPlatform/magic-modules#11902); google_project_service_identity is
  # google-beta only.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.10, < 9.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.10, < 9.0"
    }
  }
}
