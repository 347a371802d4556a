# The block is `build_config`, not `build_configuration`.
resource "google_cloudfunctions2_function" "dispatcher" {
  name     = "yoyo-dispatcher"
  location = "europe-west4"

  build_configuration {
    runtime     = "python311"
    entry_point = "on_message"
  }
}
