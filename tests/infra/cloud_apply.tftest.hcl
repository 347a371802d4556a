# tests/infra/test_cloud_apply.py applies terraform/ with these runs (terraform test,
# mock providers). FUNCTION_SOURCE_ZIP is replaced by a temporary empty archive.

mock_provider "google" {}
mock_provider "google-beta" {}

variables {
  project_id          = "my-project-1"
  function_source_zip = "FUNCTION_SOURCE_ZIP"
  pools = {
    gpu = { zone = "us-central1-a", image = "img", hourly_price_usd = 0.5 }
  }
}

run "defaults" {
  command = apply

  assert {
    condition     = google_compute_firewall.gateway_to_inference.source_ranges == toset(["10.20.1.0/26"])
    error_message = "port 8000 admits the gateway's subnetwork range, and only it"
  }
  assert {
    condition     = google_compute_subnetwork.gateway[0].ip_cidr_range == "10.20.1.0/26"
    error_message = "the gateway has a subnetwork of its own"
  }
  assert {
    condition     = google_cloudfunctions2_function.gateway.service_config[0].direct_vpc_network_interface[0].subnetwork == google_compute_subnetwork.gateway[0].name
    error_message = "the gateway's egress leaves from its own subnetwork"
  }
  assert {
    condition     = google_cloudfunctions2_function.gateway.service_config[0].available_memory == "1280Mi"
    error_message = "memory derived from concurrency 1000"
  }
  assert {
    condition     = google_cloudfunctions2_function.gateway.service_config[0].max_instance_request_concurrency == 1000
    error_message = "concurrency 1000"
  }
  assert {
    condition     = google_cloudfunctions2_function.gateway.service_config[0].timeout_seconds == 1800
    error_message = "the gateway's own timeout"
  }
  assert {
    condition     = google_cloudfunctions2_function.gateway.service_config[0].min_instance_count == 0
    error_message = "no warm instance by default"
  }
  assert {
    condition     = google_cloudfunctions2_function.gateway.service_config[0].service_account_email == google_service_account.gateway.email
    error_message = "the gateway runs as its own account"
  }
  assert {
    condition     = alltrue([for f in google_cloudfunctions2_function.event : f.service_config[0].available_memory == "512M"])
    error_message = "the event functions keep the shared memory"
  }
  assert {
    condition     = length(google_cloud_run_v2_service_iam_member.gateway_public) == 1 && google_cloud_run_v2_service_iam_member.gateway_public[0].member == "allUsers"
    error_message = "public through allUsers by default"
  }
  assert {
    condition     = output.gateway_public_access_command == null
    error_message = "no command without invoker_check_disabled"
  }
  assert {
    condition     = length(google_project_iam_member.gateway_store_writer) == 0
    error_message = "the gateway cannot write Firestore by default"
  }
  assert {
    condition     = google_service_account_iam_member.gateway_signs_blobs.service_account_id == google_service_account.gateway.name
    error_message = "signBlob on its own account"
  }
  assert {
    condition     = length(google_service_account.pool["gpu"].account_id) <= 30 && google_service_account.pool["gpu"].account_id != google_service_account.vm.account_id
    error_message = "the pool's own account, a valid account ID"
  }
  assert {
    condition     = google_pubsub_subscription_iam_member.pool_work_subscriber["gpu"].subscription == google_pubsub_subscription.work["gpu"].name
    error_message = "the pool pulls its own subscription"
  }
  assert {
    condition     = length(google_storage_bucket_iam_member.pool_batch_objects["gpu"].condition) == 0
    error_message = "no object condition until batch_objects_by_pool"
  }
}

run "invoker_check_disabled" {
  command = apply

  variables {
    gateway_public_access = "invoker_check_disabled"
  }

  assert {
    condition     = length(google_cloud_run_v2_service_iam_member.gateway_public) == 0
    error_message = "no allUsers grant"
  }
  assert {
    condition     = strcontains(output.gateway_public_access_command, "--no-invoker-iam-check")
    error_message = "the command to run once"
  }
}

run "existing_network" {
  command = apply

  variables {
    network            = "projects/my-project-1/global/networks/corp"
    subnetwork         = "projects/my-project-1/regions/us-central1/subnetworks/gpus"
    gateway_subnetwork = "gateway-only"
  }

  override_data {
    target = data.google_compute_subnetwork.gateway
    values = {
      ip_cidr_range = "10.99.0.0/26"
    }
  }

  assert {
    condition     = google_compute_firewall.gateway_to_inference.source_ranges == toset(["10.99.0.0/26"])
    error_message = "the existing gateway subnetwork's range, read from it"
  }
  assert {
    condition     = length(google_compute_subnetwork.gateway) == 0
    error_message = "no subnetwork created"
  }
  assert {
    condition     = google_cloudfunctions2_function.gateway.service_config[0].direct_vpc_network_interface[0].subnetwork == "gateway-only" && google_cloudfunctions2_function.gateway.service_config[0].direct_vpc_network_interface[0].network == "corp"
    error_message = "names, not self links"
  }
}

run "per_pool_objects_and_two_pools" {
  command = apply

  variables {
    batch_objects_by_pool = true
    pools = {
      gpu = { zone = "us-central1-a", image = "img", hourly_price_usd = 0.5 }
      llm = { zone = "us-central1-b", image = "img", hourly_price_usd = 0.9, gpu_count = 2 }
    }
    gateway = { concurrency = 100, max_held = 50, min_instances = 1 }
  }

  assert {
    condition     = strcontains(google_storage_bucket_iam_member.pool_batch_objects["llm"].condition[0].expression, "/objects/pools/llm/")
    error_message = "the pool's own object prefix"
  }
  assert {
    condition     = google_service_account.pool["gpu"].account_id != google_service_account.pool["llm"].account_id
    error_message = "an account per pool"
  }
  assert {
    condition     = google_pubsub_subscription_iam_member.pool_work_subscriber["llm"].member == google_service_account.pool["llm"].member
    error_message = "each pool's subscription is its own account's"
  }
  assert {
    condition     = google_cloudfunctions2_function.gateway.service_config[0].available_memory == "512Mi" && google_cloudfunctions2_function.gateway.service_config[0].min_instance_count == 1
    error_message = "memory from concurrency 100; one warm instance"
  }
}
