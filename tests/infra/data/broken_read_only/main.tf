# `effective_labels` is computed by the provider and cannot be set.
resource "google_pubsub_topic" "jobs" {
  name             = "yoyo-jobs"
  effective_labels = { app = "yoyo" }
}
