# Queue threshold: Cloud Monitoring watches the work subscription's backlog and sends
# each pool's incidents (opened and closed) to the queue topic, where on_queue records
# the demand. The alert policies are per pool (modules/pool); the channel is shared.

resource "google_monitoring_notification_channel" "queue" {
  project      = var.project_id
  display_name = "${var.prefix}-queue"
  description  = "Yo-Yo: queue-threshold incidents to the ${google_pubsub_topic.event["queue"].name} topic."
  type         = "pubsub"
  labels = {
    topic = google_pubsub_topic.event["queue"].id
  }
  user_labels = var.labels

  depends_on = [google_project_service.apis]
}
