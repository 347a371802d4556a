"""Every name shared between the code and the deployment (Terraform, vm/).

Invariant: a topic, entry point, environment variable or Firestore path used by the
code is spelled here once; tests/infra/test_consistency.py checks Terraform wires exactly
these and nothing else.
"""

from __future__ import annotations

# Pub/Sub topics (suffixes; the deployed name is f"{prefix}-{suffix}", prefix "yoyo").
TOPIC_CYCLE = "cycle"
TOPIC_TICK = "tick"
TOPIC_QUEUE = "queue"
TOPIC_BUDGET = "budget"
TOPIC_HEARTBEAT = "heartbeat"
TOPIC_CONTROL = "control"
TOPIC_DEAD_LETTER = "dead-letter"
TOPIC_WORK = "work"  # producers' work queue; the backlog alert watches its subscription
EVENT_TOPICS = (TOPIC_CYCLE, TOPIC_TICK, TOPIC_QUEUE, TOPIC_BUDGET, TOPIC_HEARTBEAT, TOPIC_CONTROL)

# Cloud Functions entry points in functions/main.py, by the topic that triggers them.
ENTRY_POINTS = {
    TOPIC_CYCLE: "on_cycle",
    TOPIC_TICK: "on_tick",
    TOPIC_QUEUE: "on_queue",
    TOPIC_BUDGET: "on_budget",
    TOPIC_HEARTBEAT: "on_heartbeat",
    TOPIC_CONTROL: "on_control",
}
ENTRY_KILL_SWITCH_WRITTEN = "on_kill_switch_written"  # Firestore document trigger
# The batch controller (batch/controller.py): its own topic and function, beside the
# lifecycle's (terraform/batch.tf). Its scheduler job and a submit or cancel publish to it.
TOPIC_BATCH = "batch"
ENTRY_BATCH = "on_batch"
# Every topic a function is triggered by, and its entry point (the local stack pushes each).
FUNCTION_TOPICS = {**ENTRY_POINTS, TOPIC_BATCH: ENTRY_BATCH}
ENTRY_STATUS_PAGE = "status_page"  # HTTP
ENTRY_GATEWAY = "gateway"  # HTTP: the OpenAI-compatible endpoint (/v1/...)

# Environment variables read by bootstrap.py.
ENV_CONFIG = "YOYO_CONFIG"  # the whole configuration as JSON (see config.py)
ENV_CONFIG_FILE = "YOYO_CONFIG_FILE"  # or a path to it
ENV_GATEWAY_KEY_SHA256 = "YOYO_GATEWAY_KEY_SHA256"  # gateway key digests (a mounted secret)
ENV_VLLM_API_KEY = "YOYO_VLLM_API_KEY"  # the VMs' vLLM API key, for the gateway (a secret)
ENV_BACKEND = "YOYO_BACKEND"  # "gcp" | "local"; overrides the configuration's backend

# Firestore paths (collection/document), relative to the configured database.
COLLECTION_POOLS = "yoyo_pools"  # {pool}: lease, instances, demand, ledger
SUBCOLLECTION_INSTANCES = "instances"  # yoyo_pools/{pool}/instances/{instance}: heartbeats
COLLECTION_CONTROL = "yoyo_control"
DOC_KILL_SWITCH = "kill_switch"  # yoyo_control/kill_switch: {engaged, reason, by, at}
COLLECTION_BATCHES = "yoyo_batches"  # {batch id}: a batch record (domain/batch.py)
COLLECTION_EVENTS = "yoyo_events"  # event log; TTL on field EVENT_TTL_FIELD
EVENT_TTL_FIELD = "expire_at"
KILL_SWITCH_PATH = f"{COLLECTION_CONTROL}/{DOC_KILL_SWITCH}"

# Compute Engine labels and metadata keys on a pool's VMs.
LABEL_POOL = "yoyo-pool"
METADATA_POOL = "yoyo-pool"
METADATA_AGENT_CONFIG = "yoyo-agent-config"  # JSON for the VM agent
METADATA_WORKER_CONFIG = "yoyo-worker-config"  # JSON for yoyo-worker (/etc/yoyo/worker.json)
