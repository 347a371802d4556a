# `labels` is a map of strings and `tags` a list of strings, not strings.
resource "google_pubsub_topic" "jobs" {
  name   = "yoyo-jobs"
  labels = "app=yoyo"
}

resource "google_compute_instance" "gpu" {
  name         = "yoyo-gpu"
  zone         = "europe-west4-a"
  machine_type = "g2-standard-8"
  tags         = "yoyo"

  boot_disk {}

  network_interface {
    network = "default"
  }
}
