# Names shared with the code. This file mirrors shared/yoyo_control/names.py:
# tests/infra/test_consistency.py fails when the two disagree, so change both together.

locals {
  # Pub/Sub topic suffix (deployed as "${var.prefix}-<suffix>") -> the Cloud Functions
  # entry point it triggers (names.ENTRY_POINTS).
  entry_points = {
    cycle     = "on_cycle"
    tick      = "on_tick"
    queue     = "on_queue"
    budget    = "on_budget"
    heartbeat = "on_heartbeat"
    control   = "on_control"
  }

  topic_dead_letter = "dead-letter" # names.TOPIC_DEAD_LETTER
  topic_work        = "work"        # names.TOPIC_WORK: producers' work queue

  entry_kill_switch_written = "on_kill_switch_written" # Firestore document trigger
  entry_status_page         = "status_page"            # HTTP
  entry_gateway             = "gateway"                # HTTP: the OpenAI-compatible endpoint

  env_config             = "YOYO_CONFIG"             # names.ENV_CONFIG: the whole configuration as JSON
  env_gateway_key_sha256 = "YOYO_GATEWAY_KEY_SHA256" # names.ENV_GATEWAY_KEY_SHA256 (secret)
  env_vllm_api_key       = "YOYO_VLLM_API_KEY"       # names.ENV_VLLM_API_KEY (secret)

  kill_switch_path  = "yoyo_control/kill_switch" # names.KILL_SWITCH_PATH
  collection_events = "yoyo_events"              # names.COLLECTION_EVENTS
  event_ttl_field   = "expire_at"                # names.EVENT_TTL_FIELD

  label_pool            = "yoyo-pool"          # names.LABEL_POOL
  metadata_pool         = "yoyo-pool"          # names.METADATA_POOL
  metadata_agent_config = "yoyo-agent-config"  # names.METADATA_AGENT_CONFIG
  metadata_worker       = "yoyo-worker-config" # names.METADATA_WORKER_CONFIG
}
