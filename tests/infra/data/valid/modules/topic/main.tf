variable "name" {
  type = string
}

variable "labels" {
  type    = map(string)
  default = {}
}

resource "google_pubsub_topic" "this" {
  name                       = var.name
  labels                     = var.labels
  message_retention_duration = "86400s"
}

resource "google_pubsub_subscription" "pull" {
  name                 = "${var.name}-pull"
  topic                = google_pubsub_topic.this.id
  ack_deadline_seconds = 60

  expiration_policy {
    ttl = ""
  }
}

output "id" {
  value = google_pubsub_topic.this.id
}
