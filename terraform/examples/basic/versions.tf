terraform {
  required_version = ">= 1.5"

  # The root module's floor (terraform/versions.tf).
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
