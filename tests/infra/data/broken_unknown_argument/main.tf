# `message_retention` is not an argument of google_pubsub_topic.
resource "google_pubsub_topic" "jobs" {
  name              = "yoyo-jobs"
  message_retention = "86400s"
}
