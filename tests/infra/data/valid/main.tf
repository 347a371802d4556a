# A small configuration that must pass `terraform validate` against the real google
# provider schema: nested blocks, a max-1 block, a required block, a data source, a local
# module and references to computed attributes.
terraform {
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 9.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

variable "project" {
  type    = string
  default = "yoyo-test"
}

variable "region" {
  type    = string
  default = "europe-west4"
}

data "google_project" "this" {}

module "jobs" {
  source = "./modules/topic"
  name   = "yoyo-jobs"
  labels = { app = "yoyo" }
}

resource "google_storage_bucket" "source" {
  name                        = "${var.project}-fn-source"
  location                    = "EU"
  uniform_bucket_level_access = true
}

resource "google_cloudfunctions2_function" "dispatcher" {
  name     = "yoyo-dispatcher"
  location = var.region

  build_config {
    runtime     = "python311"
    entry_point = "on_message"
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = "function-source.zip"
      }
    }
  }

  service_config {
    available_memory      = "256M"
    timeout_seconds       = 60
    max_instance_count    = 1
    service_account_email = "dispatcher@${var.project}.iam.gserviceaccount.com"
    environment_variables = {
      PROJECT = data.google_project.this.project_id
    }
  }

  event_trigger {
    trigger_region = var.region
    event_type     = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic   = module.jobs.id
    retry_policy   = "RETRY_POLICY_RETRY"
  }
}

resource "google_compute_instance" "gpu" {
  name         = "yoyo-gpu"
  zone         = "${var.region}-a"
  machine_type = "g2-standard-8"
  tags         = ["yoyo"]
  metadata = {
    startup-script = "#!/bin/sh\ntrue\n"
  }

  boot_disk {
    initialize_params {
      image = "debian-cloud/debian-12"
      size  = 100
    }
  }

  network_interface {
    network = "default"
  }

  guest_accelerator {
    type  = "nvidia-l4"
    count = 1
  }

  scheduling {
    preemptible                 = true
    automatic_restart           = false
    on_host_maintenance         = "TERMINATE"
    provisioning_model          = "SPOT"
    instance_termination_action = "STOP"
  }

  service_account {
    scopes = ["cloud-platform"]
  }
}

output "dispatcher_uri" {
  value = google_cloudfunctions2_function.dispatcher.service_config[0].uri
}

output "instance_id" {
  value = google_compute_instance.gpu.instance_id
}
