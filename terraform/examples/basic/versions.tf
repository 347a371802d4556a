terraform {
  required_version = ">= 1.9"

  # The root module's floor (terraform/versions.tf).
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
