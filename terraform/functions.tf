# The control plane: gen2 Cloud Functions built from one source archive. Every function
# gets the whole configuration in one environment variable (YOYO_CONFIG).
#
# Retries are on deliberately (RETRY_POLICY_RETRY): a function raises only on transient
# failures (Compute 429/5xx, Firestore contention) and the reconcile is idempotent, so a
# redelivery is safe; with retries off, a failed event would be silently dropped.

locals {
  function_env = {
    (local.env_config) = jsonencode(local.control_config)
  }

  function_source = {
    bucket = google_storage_bucket.source.name
    object = google_storage_bucket_object.function_source.name
  }
}

# One function per event topic: on_cycle, on_tick, on_queue, on_budget, on_heartbeat, on_control.
resource "google_cloudfunctions2_function" "event" {
  for_each = local.entry_points

  project     = var.project_id
  location    = var.region
  name        = "${var.prefix}-${replace(each.value, "_", "-")}"
  description = "Yo-Yo control plane: ${each.value} (topic ${google_pubsub_topic.event[each.key].name})"
  labels      = var.labels

  build_config {
    runtime         = var.python_runtime
    entry_point     = each.value
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = local.function_source.bucket
        object = local.function_source.object
      }
    }
  }

  service_config {
    available_memory               = var.function_memory
    timeout_seconds                = var.function_timeout_s
    max_instance_count             = var.function_max_instances
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.functions.email
    environment_variables          = local.function_env
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.event[each.key].id
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.eventarc.email
  }

  depends_on = [
    google_project_iam_member.build,
    google_project_iam_member.eventarc_receiver,
    google_project_iam_member.functions_project,
  ]
}

# The kill switch acts within seconds of a write to its Firestore document, instead of at
# the next tick. Cloud Functions' Firestore triggers deliver the event data as
# application/protobuf (google.events.cloud.firestore.v1.DocumentEventData); the trigger
# must live in the database's location.
resource "google_cloudfunctions2_function" "kill_switch" {
  project     = var.project_id
  location    = var.region
  name        = "${var.prefix}-${replace(local.entry_kill_switch_written, "_", "-")}"
  description = "Yo-Yo control plane: ${local.entry_kill_switch_written} (Firestore ${local.kill_switch_path})"
  labels      = var.labels

  build_config {
    runtime         = var.python_runtime
    entry_point     = local.entry_kill_switch_written
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = local.function_source.bucket
        object = local.function_source.object
      }
    }
  }

  service_config {
    available_memory               = var.function_memory
    timeout_seconds                = var.function_timeout_s
    max_instance_count             = var.function_max_instances
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.functions.email
    environment_variables          = local.function_env
  }

  event_trigger {
    trigger_region        = local.firestore_location
    event_type            = "google.cloud.firestore.document.v1.written"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.eventarc.email

    event_filters {
      attribute = "database"
      value     = var.firestore_database
    }

    event_filters {
      attribute = "document"
      value     = local.kill_switch_path
    }
  }

  depends_on = [
    google_firestore_database.this,
    google_project_iam_member.build,
    google_project_iam_member.eventarc_receiver,
    google_project_iam_member.functions_project,
  ]

  lifecycle {
    # An existing database's location cannot be read (no data source): guessing the
    # region would put the trigger in the wrong location when the database is in nam5.
    precondition {
      condition     = var.create_firestore_database || var.firestore_location != null
      error_message = "With create_firestore_database = false, set firestore_location to the existing database's location (gcloud firestore databases describe --database=DATABASE --format='value(locationId)')."
    }
  }
}

# The status page: HTTP, authenticated. Who may call it is var.status_page_invokers.
resource "google_cloudfunctions2_function" "status_page" {
  #checkov:skip=CKV_GCP_124:Authenticated (run.invoker only for var.status_page_invokers, never allUsers); ALLOW_ALL lets operators reach it with an identity token. Restrict with var.status_page_ingress.
  project     = var.project_id
  location    = var.region
  name        = "${var.prefix}-${replace(local.entry_status_page, "_", "-")}"
  description = "Yo-Yo control plane: ${local.entry_status_page} (HTTP, authenticated)"
  labels      = var.labels

  build_config {
    runtime         = var.python_runtime
    entry_point     = local.entry_status_page
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = local.function_source.bucket
        object = local.function_source.object
      }
    }
  }

  service_config {
    available_memory               = var.function_memory
    timeout_seconds                = 60
    max_instance_count             = 2
    ingress_settings               = var.status_page_ingress
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.functions.email
    environment_variables          = local.function_env
  }

  depends_on = [
    google_project_iam_member.build,
    google_project_iam_member.functions_project,
  ]
}

# Eventarc invokes the event functions as its own service account.
resource "google_cloud_run_v2_service_iam_member" "eventarc_invoker" {
  for_each = merge(
    { for k, f in google_cloudfunctions2_function.event : k => f.name },
    { (local.entry_kill_switch_written) = google_cloudfunctions2_function.kill_switch.name },
  )

  project  = var.project_id
  location = var.region
  name     = each.value
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.eventarc.email}"
}

resource "google_cloud_run_v2_service_iam_member" "status_page_invoker" {
  for_each = toset(var.status_page_invokers)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.status_page.name
  role     = "roles/run.invoker"
  member   = each.value
}
