"""The gateway on the local stack (``yoyoctl local up``) with the official ``openai`` client.

One stack for the module, its pool cold at the start: concurrent async requests wake it
once; then the sync client, streaming, completions, embeddings; then the kill switch over
raw HTTP. The inference servers require their own key, so every answer went through the
gateway (which holds that key), never straight to a VM.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from local.conftest import Stack, stack_config, start_stack

MODEL = "tiny-llm"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, str]]:
    tmp = tmp_path_factory.mktemp("gateway")
    pools = stack_config(tmp, 0)["pools"]
    pools["default"]["model"] = MODEL
    s = start_stack(tmp, gateway={"poll_s": 0.2, "hold_s": 60}, pools=pools)
    try:
        key = s.yoyoctl("gateway", "key")
        yield s, key["base_url"], key["key"]
    finally:
        s.kill_everything()


def _lease_grants(s: Stack) -> list[dict[str, Any]]:
    events = s.yoyoctl("events", "--limit", "500")["events"]
    return [e for e in events if "granted to wake" in str(e.get("reason", ""))]


def test_concurrent_async_requests_at_a_cold_pool_wake_it_once(gw) -> None:
    s, base_url, key = gw
    assert s.status()["lease"] is None

    async def ask_all() -> list[Any]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)
        async with client:
            asks = [
                client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=[{"role": "user", "content": f"q{i}"}], max_tokens=3
                )
                for i in range(12)
            ]
            return list(await asyncio.gather(*asks))

    answers = asyncio.run(ask_all())
    assert all(a.parse().choices[0].message.content for a in answers)
    assert all(float(a.headers["x-yoyo-cold-start"]) > 0 for a in answers)
    assert len(_lease_grants(s)) == 1
    cold = [e for e in s.yoyoctl("events", "--limit", "500")["events"] if e["kind"] == "cold-start"]
    assert len(cold) == 1
    [shown] = s.status()["cold_starts"]  # yoyoctl status: the cold start and its phases
    assert shown["held_s"] > 0 and set(shown["phases"]) == {
        "wake→running",
        "running→ready",
        "ready→forwarded",
        "forwarded→first byte",
    }
    assert all(v is not None and v >= 0 for v in shown["phases"].values()), shown


def test_the_sync_client_answers_streams_completes_and_embeds(gw) -> None:
    _, base_url, key = gw
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)
    [model] = client.models.list().data
    assert model.id == MODEL and client.models.retrieve(MODEL).id == MODEL
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=4
    )
    assert answer.choices[0].message.content
    pieces = [
        chunk.choices[0].delta.content
        for chunk in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=6, stream=True
        )
        if chunk.choices and chunk.choices[0].delta.content
    ]
    assert len(pieces) == 6
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model=MODEL, prompt="x", max_tokens=3, stream=True)
    )
    assert streamed.split() == ["This", "answer", "was"]
    embedded = client.embeddings.create(model=MODEL, input=["a", "b", "c"])
    assert [d.index for d in embedded.data] == [0, 1, 2]


def test_the_async_client_streams(gw) -> None:
    _, base_url, key = gw

    async def stream() -> list[str]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0)
        async with client:
            chunks = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "a"}], max_tokens=5, stream=True
            )
            return [c.choices[0].delta.content async for c in chunks if c.choices[0].delta.content]

    assert len(asyncio.run(stream())) == 5


def test_the_stack_keeps_a_client_connection_alive(gw) -> None:
    """As gunicorn does in production: no new connection (and thread) per request."""
    _, base_url, key = gw
    url = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    ends = set()
    for _ in range(3):
        conn.request("GET", f"{url.path}/models", headers={"Authorization": f"Bearer {key}"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Connection") is None
        response.read()
        assert conn.sock is not None
        ends.add(conn.sock.getsockname())
    conn.close()
    assert len(ends) == 1


def test_a_wrong_key_and_an_unknown_model_are_refused_by_the_client(gw) -> None:
    _, base_url, key = gw
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    with pytest.raises(openai.NotFoundError, match=MODEL):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "a"}])
    with pytest.raises(openai.NotFoundError, match="gpt-9"):
        client.models.retrieve("gpt-9")


def test_the_vms_refuse_callers_without_the_inference_key(gw) -> None:
    s, _, _ = gw
    ports = [p.read_text().strip() for p in (s.state_dir / "vms").glob("*/port")]
    assert ports, "no local VM is up"
    request = urllib.request.Request(
        f"http://127.0.0.1:{ports[0]}/v1/models", headers={"Authorization": "Bearer nope"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401


def test_the_kill_switch_refuses_at_once_over_raw_http(gw) -> None:
    s, base_url, key = gw
    s.yoyoctl("kill", "--reason", "maintenance", "--yes", "--direct")
    try:
        deadline = time.monotonic() + 10
        while True:
            request = urllib.request.Request(
                f"{base_url}/chat/completions",
                data=json.dumps({"model": MODEL, "messages": []}).encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            try:
                urllib.request.urlopen(request, timeout=10).read()
            except urllib.error.HTTPError as exc:
                if exc.code == 503:
                    error = json.loads(exc.read())["error"]
                    break
            assert time.monotonic() < deadline, "the kill switch was not seen within 10 s"
            time.sleep(0.2)
        assert error["code"] == "kill_switch_engaged" and "maintenance" in error["message"]
    finally:
        s.yoyoctl("unkill", "--yes", "--direct")
