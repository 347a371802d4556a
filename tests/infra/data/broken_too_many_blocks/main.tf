# `scheduling` allows at most one block.
resource "google_compute_instance" "gpu" {
  name         = "yoyo-gpu"
  zone         = "europe-west4-a"
  machine_type = "g2-standard-8"

  boot_disk {}

  network_interface {
    network = "default"
  }

  scheduling {
    preemptible = true
  }

  scheduling {
    automatic_restart = false
  }
}
