# google_pubsub_topic needs `name`; google_compute_instance needs a `boot_disk` block.
resource "google_pubsub_topic" "jobs" {
  labels = { app = "yoyo" }
}

resource "google_compute_instance" "gpu" {
  name         = "yoyo-gpu"
  zone         = "europe-west4-a"
  machine_type = "g2-standard-8"

  network_interface {
    network = "default"
  }
}
