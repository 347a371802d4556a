"""The gateway's async client keeps connections to a VM alive, and a kept connection the
VM closed while idle (vLLM's server does after 5 s) is replaced, never reported as a lost
VM; each failure says whose it is (UpstreamLost.kind)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from yoyo_control.adapters.upstream_http import HttpUpstream
from yoyo_control.ports import UpstreamLost

ANSWER = b'{"ok": true}'


class Vm:
    """An HTTP/1.1 server on a raw socket: it counts connections, and can drop each one
    right after answering (as a server whose keep-alive timeout passed), silently."""

    def __init__(self, drop_after_answer: bool = False, cut_short: bool = False) -> None:
        self.drop = drop_after_answer
        self.cut_short = cut_short
        self.connections = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                head, _, data = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(data) < length:
                    data += conn.recv(65536)
                data = data[length:]
                if self.cut_short:  # promises more than it sends, then closes
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER) + 100, ANSWER)
                    )
                    return
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
                )
                if self.drop:
                    time.sleep(0.05)
                    return  # closed without saying so: the client learns it at its next use

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def vm() -> Iterator[Vm]:
    server = Vm()
    yield server
    server.close()


async def ask(upstream: HttpUpstream, address: str) -> bytes:
    response = await upstream.post(address, "/v1/completions", b'{"model": "m"}')
    try:
        return b"".join([chunk async for chunk in response.chunks()])
    finally:
        await response.close()


def run(scenario: Callable[[HttpUpstream], Awaitable[None]], **kw: float) -> None:
    """``scenario`` on one client in one event loop (a client is bound to its loop)."""

    async def main() -> None:
        upstream = HttpUpstream("k", **kw)
        try:
            await scenario(upstream)
        finally:
            await upstream.close()

    asyncio.run(main())


def test_one_connection_serves_request_after_request(vm: Vm) -> None:
    async def scenario(upstream: HttpUpstream) -> None:
        assert [await ask(upstream, vm.address) for _ in range(5)] == [ANSWER] * 5

    run(scenario)
    assert vm.connections == 1


def test_a_connection_the_vm_closed_while_idle_is_replaced_not_lost() -> None:
    vm = Vm(drop_after_answer=True)

    async def scenario(upstream: HttpUpstream) -> None:
        for _ in range(3):
            assert await ask(upstream, vm.address) == ANSWER
            await asyncio.sleep(0.1)  # the VM has closed it by now

    try:
        run(scenario)
        assert vm.connections == 3
    finally:
        vm.close()


def test_a_connection_whose_answer_was_not_read_to_the_end_is_not_reused(vm: Vm) -> None:
    async def scenario(upstream: HttpUpstream) -> None:
        abandoned = await upstream.post(vm.address, "/v1/completions", b"{}")
        await abandoned.close()  # nothing read: the rest of the answer would come first on it
        assert await ask(upstream, vm.address) == ANSWER

    run(scenario)
    assert vm.connections == 2


def test_a_vm_that_is_not_there_is_lost_by_connect() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"

    async def scenario(upstream: HttpUpstream) -> None:
        with pytest.raises(UpstreamLost) as lost:
            await upstream.post(address, "/v1/completions", b"{}")
        assert lost.value.kind == "connect"

    run(scenario, connect_timeout_s=1)


def test_an_answer_cut_short_of_its_content_length_is_dropped_not_complete() -> None:
    vm = Vm(cut_short=True)

    async def scenario(upstream: HttpUpstream) -> None:
        with pytest.raises(UpstreamLost) as lost:
            await ask(upstream, vm.address)
        assert lost.value.kind == "dropped"

    try:
        run(scenario)
    finally:
        vm.close()


def test_a_silent_vm_is_a_timeout() -> None:
    listener = socket.socket()  # accepts (the kernel's backlog) and never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    async def scenario(upstream: HttpUpstream) -> None:
        with pytest.raises(UpstreamLost) as lost:
            await ask(upstream, f"127.0.0.1:{listener.getsockname()[1]}")
        assert lost.value.kind == "timeout"

    try:
        run(scenario, read_timeout_s=0.3)
    finally:
        listener.close()


def test_a_request_goes_out_in_one_send(vm: Vm, monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers and body apart would wake the VM's server twice for one request."""
    import httpcore2 as httpcore

    writes: list[bytes] = []
    real = httpcore.AnyIOBackend.connect_tcp

    async def counted(self: Any, *args: Any, **kw: Any) -> Any:
        stream = await real(self, *args, **kw)
        write = stream.write

        async def counting(buffer: bytes, timeout: float | None = None) -> None:
            writes.append(bytes(buffer))
            await write(buffer, timeout)

        stream.write = counting  # type: ignore[method-assign]
        return stream

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", counted)

    async def scenario(upstream: HttpUpstream) -> None:
        assert await ask(upstream, vm.address) == ANSWER

    run(scenario)
    assert len(writes) == 1 and writes[0].endswith(b'\r\n\r\n{"model": "m"}')
