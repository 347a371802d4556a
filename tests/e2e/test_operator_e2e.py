"""End to end: the operator's real tools — ``gcloud pubsub topics publish`` and a console flip.

gcloud runs for real, pointed at the Pub/Sub emulator: a throwaway configuration
directory, the project, the API endpoint override, and a dummy access token (the
emulator checks no credentials; with a token set gcloud neither looks for accounts nor
asks the metadata server).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from yoyo_control import names
from yoyo_control.adapters.pubsub import PubSubPublisher
from yoyo_control.errors import PermanentError

GCLOUD = shutil.which("gcloud")


pytestmark = pytest.mark.emulator


def gcloud_publish(world, tmp_path: Path, message: str) -> str:
    """``gcloud pubsub topics publish yoyo-control --message=…``; the message id."""
    assert GCLOUD is not None
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "CLOUDSDK_CORE_PROJECT": world.project,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": f"http://{world.emulators.pubsub.host}/",
        "CLOUDSDK_AUTH_ACCESS_TOKEN": "emulator-needs-no-token",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
    }
    command = [GCLOUD, "pubsub", "topics", "publish", world.topic(names.TOPIC_CONTROL)]
    done = subprocess.run(
        [*command, f"--message={message}", "--format=json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["messageIds"][0])


@pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed")
def test_gcloud_publish_engages_and_lifts_the_kill_switch(world, tmp_path):
    world.subscribe(names.TOPIC_CONTROL)
    world.subscribe(names.TOPIC_CYCLE)
    world.publish(names.TOPIC_CYCLE, {"pool": world.pool})
    world.eventually(lambda: world.status() == "RUNNING", "the cycle started the VM")

    gcloud_publish(world, tmp_path, '{"command":"kill","reason":"maintenance"}')
    world.eventually(lambda: world.store.get_kill().engaged, "the kill switch engaged")
    world.eventually(lambda: world.status() == "TERMINATED", "the kill stopped the VM")
    kill = world.store.get_kill()
    assert (kill.reason, kill.by) == ("maintenance", "operator")

    gcloud_publish(world, tmp_path, '{"command":"unkill","by":"alice"}')
    world.eventually(lambda: not world.store.get_kill().engaged, "the kill switch lifted")
    assert world.store.get_kill().by == "alice"
    assert world.status() == "TERMINATED"  # lifting never starts anything by itself


def test_a_console_flip_stops_every_pool_through_the_firestore_trigger(world):
    """The document is written as an operator would; Eventarc's delivery is replayed.

    There is no Eventarc emulator: the test posts the exact CloudEvent Eventarc sends for
    a Firestore write (binary mode, protobuf DocumentEventData) to the entry point.
    """
    import urllib.request

    from google.events.cloud.firestore import Document, DocumentEventData, Value

    import emulators

    world.subscribe(names.TOPIC_CYCLE)
    world.publish(names.TOPIC_CYCLE, {"pool": world.pool})
    world.eventually(lambda: world.status() == "RUNNING", "the cycle started the VM")

    client = emulators.firestore_client(world.emulators.firestore.host, world.project)
    try:
        doc = client.collection(names.COLLECTION_CONTROL).document(names.DOC_KILL_SWITCH)
        doc.set({"engaged": True, "reason": "flipped in the console", "by": "bob"})
    finally:
        client.close()
    name = f"projects/{world.project}/databases/(default)/documents/{names.KILL_SWITCH_PATH}"
    fields = {
        "engaged": Value(boolean_value=True),
        "reason": Value(string_value="flipped in the console"),
        "by": Value(string_value="bob"),
    }
    body = DocumentEventData.serialize(DocumentEventData(value=Document(name=name, fields=fields)))
    headers = {
        "Content-Type": "application/protobuf",
        "ce-specversion": "1.0",
        "ce-id": "console-flip-1",
        "ce-source": f"//firestore.googleapis.com/projects/{world.project}/databases/(default)",
        "ce-type": "google.cloud.firestore.document.v1.written",
        "ce-subject": f"documents/{names.KILL_SWITCH_PATH}",
        "ce-time": "2026-11-23T04:06:14.109Z",
    }
    url = f"{world.base_url}/{names.ENTRY_KILL_SWITCH_WRITTEN}/"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
    assert world.status() == "TERMINATED"
    assert world.store.get_pool(world.pool).lease is None


def test_the_publisher_reaches_the_emulator_and_reports_a_missing_topic(world):
    world.admin.create_pull_subscription("probe", world.topic(names.TOPIC_HEARTBEAT))
    publisher = PubSubPublisher(world.project)
    try:
        mid = publisher.publish(world.topic(names.TOPIC_HEARTBEAT), b'{"x": 1}', origin="agent")
        with pytest.raises(PermanentError, match="NotFound"):
            publisher.publish("yoyo-no-such-topic", b"{}")
    finally:
        publisher.close()
    [received] = world.admin.pull("probe")
    assert received["messageId"] == mid
    assert (received["data"], received["attributes"]) == (b'{"x": 1}', {"origin": "agent"})
