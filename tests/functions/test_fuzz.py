"""Property-based fuzzing of every entry point: no crash, the right ack/redeliver answer.

Deliveries go through the functions-framework app (functions/main.py) exactly as
Eventarc posts them. Strategies reach for what broke the control plane before (issue
12): lone UTF-16 surrogates, NUL, right-to-left marks, huge and negative numbers, far
past and future times, in the envelope and in every payload field.

Properties (the envelope and the payload are both fuzzed):
1. Healthy store and Compute, on SQLite AND on the Firestore emulator: every delivery
   answers 200. One that does not decode is in the event log as ``rejected`` under its
   message id and changes nothing else (pool, heartbeats, kill switch); one that does
   yields its fact: in the event log with the decoder's fields (a heartbeat: stored,
   or superseded by a newer one), and a kill engages the switch in every case.
2. A store that raises TemporaryError: a delivery that decodes answers 500 (redelivered),
   one that does not answers 200 (a bad message never loops, even with the store down).
3. A Compute that raises TemporaryError: a valid tick, and a valid cycle that must start a
   VM, answer 500.
4. A kill command, whatever its reason, ``by``, extra keys and publish time, and however
   a client lifted the switch before, engages it and the next tick stops the VM (both
   stores).
5. A kill switch document write (protobuf or JSON, fuzzed fields) never loops: it is
   recorded as a fact or a rejection (both stores).
The decoder is the oracle for "decodes" (for heartbeats, the decoder and the sender's
identity check: a beat signed for another VM does not "decode"); the properties check the
mapping and that nothing escapes as an unhandled exception.
"""

from __future__ import annotations

import atexit
import base64
import itertools
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yoyo_control import bootstrap, identity, messages, names
from yoyo_control.domain.codec import to_doc
from yoyo_control.domain.facts import Fact, HeartbeatReceived, KillRequested, kind_of
from yoyo_control.domain.model import KillSwitch
from yoyo_control.errors import TemporaryError
from yoyo_control.local import identity as local_identity
from yoyo_control.service import fact_event_id

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FUZZ_FAULTS = settings(FUZZ, max_examples=20)
SOURCES = [*names.ENTRY_POINTS]  # topic suffixes
_ids = itertools.count(1)
# Heartbeats are signed with this key (the local stand-in for Google's), which the
# entry point trusts here: fuzzed beats carry their own VM's token, another's, or junk.
KEY_DIR = Path(tempfile.mkdtemp(prefix="yoyo-fuzz-identity-"))
atexit.register(shutil.rmtree, KEY_DIR, True)


def _token(instance: str) -> str:
    key = local_identity.ensure_key(KEY_DIR)
    return local_identity.sign(
        key,
        audience="yoyo-heartbeat",
        project="my-project",
        zone="us-central1-a",
        instance=instance,
        now=time.time(),
    )


@pytest.fixture(autouse=True)
def _trusted_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        bootstrap,
        "build_identity",
        lambda config: local_identity.verifier(KEY_DIR, config.heartbeat_audience),
    )


# Text that broke stores or screens: lone surrogates (what JSON.stringify writes for a
# string cut inside an emoji), NUL, right-to-left marks and other invisible code points.
NASTY_CHARS = ["\ud83d", "\ude00", "\udfff", "\x00", "\u202e", "\u200f", "\ufeff", "\uffff"]
nasty_text = st.one_of(
    st.text(max_size=20),
    st.text(st.sampled_from([*NASTY_CHARS, "a", "é", " ", "😀"]), max_size=12),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Cf"]), max_size=8),
)
odd_numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([-1, -(2**63) - 1, 2**63, 10**30, -1e308, 1e308, 5e-324, -0.0]),
)
scalars = st.none() | st.booleans() | odd_numbers | st.floats(allow_nan=False) | nasty_text
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
good_times = st.one_of(
    st.just("2026-11-23T04:06:10Z"),
    st.just("2026-11-23T04:06:10.123456789+00:00"),
    st.floats(1.79e9, 1.7954e9),
    st.integers(1_790_000_000, 1_795_400_000),
)
far_times = st.sampled_from(
    [
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2099-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999999Z",
        -1,
        -1e18,
        1e20,
        253_402_300_800,
        "2026-11-23T04:06:10+14:00",
        "2026-11-23T04:06:10\ud83d",
    ]
)
times = st.one_of(good_times, good_times, good_times, far_times, st.integers(0, 2**40), nasty_text)
durations = st.one_of(
    st.sampled_from(["30m", "1h30m", "90s", "600", "0", "-1m", "soon"]), st.floats(-10, 1e8)
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values, sometimes anything at all."""
    return st.one_of(valid, valid, valid, json_values)


@st.composite
def objects(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """A JSON object with these keys: each mostly plausible, sometimes odd or missing."""
    body: dict[str, Any] = {}
    for key, valid in fields.items():
        roll = draw(st.integers(0, 19))  # small draws (what Hypothesis tries first) are valid
        if roll == 19:
            continue
        body[key] = draw(json_values) if roll == 18 else draw(valid)
    if draw(st.integers(0, 9)) == 9:
        body.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return body


pool_names = st.sampled_from(["default", "default", "default", "nope"])
incidents = objects(
    {
        "state": st.sampled_from(["open", "closed", "OPEN"]),
        "observed_value": st.sampled_from(["212.000", "0", "nan", "1e400", 7]),
        "policy_user_labels": objects({"yoyo_pool": pool_names}),
        "metadata": objects({"user_labels": objects({"yoyo_pool": pool_names})}),
        "incident_id": nasty_text,
    }
)
COMMANDS = {
    "kill": {"reason": nasty_text, "by": st.one_of(st.sampled_from(["alice", ""]), nasty_text)},
    "unkill": {"by": st.sampled_from(["alice", "bob"])},
    "start": {"pool": pool_names, "for": durations, "by": st.just("alice"), "reason": nasty_text},
    "stop": {"pool": pool_names, "reason": nasty_text, "by": nasty_text},
    "extend": {"pool": pool_names, "for": durations},
    "nuke": {"pool": pool_names},
}
BODIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "cycle": objects({"pool": pool_names, "window": durations}),
    "tick": objects({}),
    "queue": st.one_of(
        objects({"pool": pool_names, "depth": st.one_of(st.integers(-5, 10**6), odd_numbers)}),
        objects({"version": st.just("1.2"), "incident": incidents}),
    ),
    "budget": objects(
        {
            "costAmount": st.one_of(st.floats(0, 1e6), odd_numbers),
            "budgetAmount": st.one_of(st.floats(0, 1e6), odd_numbers),
            "currencyCode": st.one_of(st.just("USD"), nasty_text),
            "budgetDisplayName": nasty_text,
            "alertThresholdExceeded": st.sampled_from([0.5, 1.0, 1.2]),
            "forecastThresholdExceeded": st.sampled_from([0.9, 1.0]),
            "costIntervalStart": times,
        }
    ),
    "heartbeat": objects(
        {
            "pool": pool_names,
            "instance": st.sampled_from(["yoyo-default-0", "yoyo-default-0", "vm-x"]),
            "boot_id": st.one_of(st.sampled_from(["b-1", "b-2"]), nasty_text),
            "sent_at": times,
            "busy": st.booleans(),
            "running": st.one_of(st.integers(-1, 5), odd_numbers),
            "waiting": st.one_of(st.integers(-1, 5), odd_numbers),
            "last_request_at": st.one_of(st.none(), times),
            "identity": st.sampled_from(["own", "own", "other", "junk"]).map(
                lambda kind: {"own": _token("yoyo-default-0"), "other": _token("vm-x")}.get(
                    kind, "junk"
                )
            ),
        }
    ),
    "control": st.sampled_from(sorted(COMMANDS)).flatmap(
        lambda c: objects({"command": st.just(c), **COMMANDS[c]})
    ),
}


@st.composite
def payloads(draw: st.DrawFn, source: str) -> bytes:
    shape = draw(st.integers(0, 9))
    if shape == 9:
        return json.dumps(draw(json_values)).encode()
    if shape == 8:
        return draw(st.binary(max_size=64))
    if shape == 7 and draw(st.booleans()):
        return b'{"pad": "' + b"x" * (messages.MAX_DATA_BYTES + 1) + b'"}'
    return json.dumps(draw(BODIES[source])).encode()


@st.composite
def deliveries(draw: st.DrawFn, sources: list[str] = SOURCES) -> tuple[str, dict[str, Any]]:
    """(source, structured CloudEvent) with a fuzzed Pub/Sub envelope around a payload."""
    source = draw(st.sampled_from(sources))
    data = draw(payloads(source))
    mid = f"fz-{next(_ids)}"
    message: dict[str, Any] = {
        "data": base64.b64encode(data).decode(),
        "messageId": mid,
        "publishTime": draw(st.sampled_from(["2026-11-23T04:06:14.109Z"] * 4) | far_times),
    }
    if source == "budget" or draw(st.integers(0, 4)) == 4:
        message["attributes"] = {
            "budgetId": "de72f49d-779b-4945-a127-4d6ce8def0bb",
            "billingAccountId": "01D4EE-079462-DFD6EC",
            "schemaVersion": "1.0",
        }
    if draw(st.integers(0, 3)) == 3:  # a broken envelope
        for key in draw(
            st.sets(st.sampled_from(["data", "messageId", "publishTime", "attributes"]))
        ):
            if draw(st.booleans()):
                message.pop(key, None)
            else:
                message[key] = draw(json_values)
    envelope: Any = {"subscription": "projects/p/subscriptions/s", "message": message}
    if draw(st.integers(0, 19)) == 19:
        envelope = draw(json_values)
    event = {
        "specversion": "1.0",
        "id": draw(st.one_of(st.just(mid), st.just(mid), st.text(min_size=1, max_size=12))),
        "source": "//pubsub.googleapis.com/projects/my-project/topics/yoyo-fuzz",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "time": draw(st.one_of(st.just("2026-11-23T04:06:14.109Z"), st.text(max_size=5))),
        "data": envelope,
    }
    return source, event


def decodes(world, source: str, event: dict[str, Any]) -> bool:
    return decoded(world, source, event) is not None


def decoded(world, source: str, event: dict[str, Any]) -> Fact | None:
    """The oracle: the decoder's fact (heartbeats: only from their own VM), or None when
    the delivery must be rejected."""
    config = world.service.config
    try:
        fact = messages.decode(source, event, config)
        if source == names.TOPIC_HEARTBEAT:
            token = identity.heartbeat_token(event)
            identity.admit_heartbeat(fact, token, bootstrap.build_identity(config), config)
        return fact
    except Exception:
        return None


def snapshot(world) -> tuple[Any, ...]:
    """Everything a delivery may change, but the event log."""
    store = world.store
    beats = {
        i: store.get_heartbeat(world.pool, i)
        for i in world.service.config.pools[world.pool].instances
    }
    return store.get_pool(world.pool), to_doc(store.get_kill()), beats


def as_stored(value: Any) -> Any:
    return json.loads(json.dumps(to_doc(value), default=str))


def post(call, source: str, event: dict[str, Any]) -> Any:
    target = names.ENTRY_POINTS.get(source, names.ENTRY_KILL_SWITCH_WRITTEN)
    return call(target, event)


def logged_as_rejected(world, event: dict[str, Any], before: int) -> bool:
    rejected = [e for e in world.store.events(limit=100_000) if e.kind == "rejected"]
    mid = messages.event_message_id(event)
    if mid:
        return any(e.message_id == mid for e in rejected)
    return len(rejected) > before


@pytest.mark.parametrize("source", SOURCES)
@FUZZ
@given(data=st.data())
def test_every_delivery_is_rejected_with_nothing_stored_or_yields_its_fact(
    any_world, call, source, data
):
    world = any_world
    _, event = data.draw(deliveries([source]))
    fact = decoded(world, source, event)
    hypothesis.event(f"{source}: {type(fact).__name__}")  # --hypothesis-show-statistics
    if isinstance(fact, KillRequested):  # "a kill engages": start from a lifted switch
        world.store.transact(lambda tx: tx.save_kill(KillSwitch()))
    seen_before = fact is not None and world.store.transact(
        lambda tx: tx.has_event(fact_event_id(fact))
    )
    rejected_before = len([e for e in world.store.events(limit=100_000) if e.kind == "rejected"])
    before = snapshot(world)
    response = post(call, source, event)
    assert response.status_code == 200, response.data
    if fact is None:
        assert logged_as_rejected(world, event, rejected_before)
        assert snapshot(world) == before  # acknowledged with nothing stored
        return
    recorded = {e.id: e for e in world.store.events(limit=100_000) if e.kind == "fact"}
    if isinstance(fact, HeartbeatReceived):
        beat = fact.heartbeat
        stored = world.store.get_heartbeat(world.pool, beat.instance)
        assert fact_event_id(fact) in recorded or (
            stored is not None and stored.sent_at >= beat.sent_at
        )
    elif not seen_before:  # (a redelivery keeps the first delivery's fact)
        entry = recorded[fact_event_id(fact)]
        assert entry.data == as_stored({"fact": kind_of(fact), **to_doc(fact)})
    if isinstance(fact, KillRequested) and not seen_before:
        assert world.store.get_kill().engaged


@pytest.mark.parametrize("source", SOURCES)
@FUZZ_FAULTS
@given(data=st.data())
def test_a_failing_store_redelivers_valid_facts_only(world, call, source, data, monkeypatch):
    _, event = data.draw(deliveries([source]))

    def down(_fn):
        raise TemporaryError("firestore: deadline exceeded")

    valid = decodes(world, source, event)
    with monkeypatch.context() as patch:
        patch.setattr(world.store, "transact", down)
        response = post(call, source, event)
    assert response.status_code == (500 if valid else 200)


@FUZZ_FAULTS
@given(delivery=deliveries(["tick", "cycle"]))
def test_a_failing_compute_redelivers_ticks_and_starts(world, call, delivery, monkeypatch):
    source, event = delivery

    def unavailable(*_args):
        raise TemporaryError("compute: 503")

    valid = decodes(world, source, event)
    world.clock.advance(9 * 3600)  # every earlier lease has expired: a valid cycle must start
    with monkeypatch.context() as patch:
        for method in ("list_instances", "start", "stop", "get"):
            patch.setattr(world.compute, method, unavailable)
        response = post(call, source, event)
    assert response.status_code == (500 if valid else 200)


KILL_HEADERS = {
    "ce-specversion": "1.0",
    "ce-source": "//firestore.googleapis.com/projects/my-project/databases/(default)",
    "ce-type": "google.cloud.firestore.document.v1.written",
    "ce-subject": "documents/yoyo_control/kill_switch",
    "ce-time": "2026-11-23T04:06:14.109Z",
}
firestore_values = st.fixed_dictionaries(
    {},
    optional={
        "booleanValue": json_values,
        "stringValue": maybe(nasty_text),
        "timestampValue": maybe(times),
        "doubleValue": json_values,
        "nullValue": json_values,
    },
)
kill_documents = st.fixed_dictionaries(
    {},
    optional={
        "value": maybe(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(
                        [
                            "projects/p/databases/(default)/documents/yoyo_control/kill_switch",
                            "projects/p/databases/(default)/documents/other/doc",
                        ]
                    )
                },
                optional={
                    "fields": maybe(
                        st.dictionaries(
                            st.sampled_from(["engaged", "reason", "by", "at", "x"]),
                            firestore_values,
                        )
                    )
                },
            )
        ),
        "oldValue": json_values,
        "updateMask": json_values,
    },
)


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=128),
        kill_documents.map(lambda d: json.dumps(d).encode()),
    ),
    content_type=st.sampled_from(["application/protobuf", "application/json"]),
)
def test_kill_switch_writes_never_loop(any_world, app, body, content_type):
    world = any_world
    event_id = f"fz-{next(_ids)}"
    headers = {**KILL_HEADERS, "ce-id": event_id, "Content-Type": content_type}
    client = app(names.ENTRY_KILL_SWITCH_WRITTEN)
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 200, response.data
    recorded = world.store.events(limit=100_000)
    assert any(e.message_id == event_id and e.kind in ("fact", "rejected") for e in recorded)


# Valid JSON only (no Infinity: json.dumps would write it, JSON does not have it).
json_texts = st.recursive(
    st.none()
    | st.booleans()
    | odd_numbers
    | st.floats(allow_nan=False, allow_infinity=False)
    | nasty_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(nasty_text, inner, max_size=3),
    max_leaves=8,
)
kill_bodies = st.fixed_dictionaries(
    {"command": st.sampled_from(["kill", "KILL", " Kill "])},
    optional={"reason": json_texts, "by": json_texts, "fro": json_texts},
)


@FUZZ
@given(
    body=kill_bodies,
    published=st.one_of(good_times, st.sampled_from([0, "1970-01-01T00:00:00Z", 4_102_444_800])),
    lifted_at=st.one_of(st.none(), st.floats(0, 2**40)),
)
def test_a_kill_engages_whatever_it_carries_on_every_store(
    any_world, call, envelope, body, published, lifted_at
):
    """Any reason and ``by`` (lone surrogates, NUL, RTL marks, numbers, objects, empty),
    unknown keys, a publish time far in the past, a switch lifted "later" by a client
    clock: the kill engages, and the next tick answers 200 and stops the VM."""
    world = any_world
    world.store.transact(lambda tx: tx.save_kill(KillSwitch(False, "lifted", "bob", lifted_at)))
    publish_time = published if isinstance(published, str) else float(published)
    event = envelope(body, message_id=f"fz-{next(_ids)}", publish_time=publish_time)
    assert post(call, "control", event).status_code == 200
    assert world.store.get_kill().engaged, world.rejected()
    world.clock.advance(60)
    tick = envelope({}, message_id=f"fz-{next(_ids)}")
    assert post(call, "tick", tick).status_code == 200
    assert world.compute.status[world.instance] == "TERMINATED"
