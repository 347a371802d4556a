# Two private buckets: the model weights the VMs copy to local disk at boot, and the
# function source archive Cloud Functions builds from.

locals {
  weights_bucket = coalesce(var.weights_bucket_name, "${var.project_id}-${var.prefix}-weights")
  source_bucket  = coalesce(var.source_bucket_name, "${var.project_id}-${var.prefix}-source")
}

resource "google_storage_bucket" "weights" {
  #checkov:skip=CKV_GCP_62:Access logs of a private weights bucket read only by the VMs' service account add cost, not insight; Cloud Audit Logs cover admin access.
  project                     = var.project_id
  name                        = local.weights_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # Weights are large: keep replaced versions a week, long enough to roll back.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:The source bucket holds build inputs written by Terraform; Cloud Audit Logs cover admin access.
  project                     = var.project_id
  name                        = local.source_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # Each archive has its own object name, so a replaced archive becomes noncurrent when
  # Terraform deletes it: keep it 30 days for rollbacks.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# Named by content: a new archive is a new object, which makes Terraform redeploy the
# functions; an unchanged archive (the build is deterministic) changes nothing.
resource "google_storage_bucket_object" "function_source" {
  bucket       = google_storage_bucket.source.name
  name         = "function-source/${filemd5(var.function_source_zip)}.zip"
  source       = var.function_source_zip
  content_type = "application/zip"
}
