"""The gateway's client keeps connections to a VM alive, and a kept connection the VM
closed while idle (vLLM's server does after 5 s) is replaced, never reported as a lost VM."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator

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


def ask(upstream: HttpUpstream, address: str) -> bytes:
    response = upstream.post(address, "/v1/completions", b'{"model": "m"}')
    try:
        return b"".join(response.chunks())
    finally:
        response.close()


def test_one_connection_serves_request_after_request(vm: Vm) -> None:
    upstream = HttpUpstream("k")
    assert [ask(upstream, vm.address) for _ in range(5)] == [ANSWER] * 5
    assert vm.connections == 1


def test_a_connection_the_vm_closed_while_idle_is_replaced_not_lost() -> None:
    vm = Vm(drop_after_answer=True)
    try:
        upstream = HttpUpstream("k")
        for _ in range(3):
            assert ask(upstream, vm.address) == ANSWER
            time.sleep(0.1)  # the VM has closed it by now
        assert vm.connections == 3
    finally:
        vm.close()


def test_a_connection_whose_answer_was_not_read_to_the_end_is_not_reused(vm: Vm) -> None:
    upstream = HttpUpstream("k")
    abandoned = upstream.post(vm.address, "/v1/completions", b"{}")
    abandoned.close()  # nothing read: the rest of the answer would come first on it
    assert ask(upstream, vm.address) == ANSWER
    assert vm.connections == 2


def test_a_vm_that_is_not_there_is_lost() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(UpstreamLost):
        HttpUpstream("k", connect_timeout_s=1).post(address, "/v1/completions", b"{}")


def test_a_request_goes_out_in_one_send(vm: Vm, monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers and body apart would wake the VM's server twice for one request."""
    sent: list[bytes] = []
    real = http.client.HTTPConnection.send
    monkeypatch.setattr(
        http.client.HTTPConnection, "send", lambda self, data: (sent.append(data), real(self, data))
    )
    assert ask(HttpUpstream("k"), vm.address) == ANSWER
    assert len(sent) == 1 and sent[0].endswith(b'\r\n\r\n{"model": "m"}')


def test_an_answer_cut_short_of_its_content_length_is_lost_not_complete() -> None:
    vm = Vm(cut_short=True)
    try:
        upstream = HttpUpstream("k")
        with pytest.raises(UpstreamLost, match="cut short"):
            ask(upstream, vm.address)
        assert upstream._idle.get(vm.address, []) == []  # that connection is not kept
    finally:
        vm.close()


def test_stale_kept_connections_cost_one_retry_on_a_fresh_one_not_one_each() -> None:
    """Three kept connections the VM closed: the request is retried once, on a new
    connection, not on each stale one in turn (each retry may repeat the request)."""
    vm = Vm(drop_after_answer=True)
    try:
        upstream = HttpUpstream("k")
        answers = [upstream.post(vm.address, "/v1/completions", b"{}") for _ in range(3)]
        for answer in answers:
            assert b"".join(answer.chunks()) == ANSWER
            answer.close()
        assert len(upstream._idle[vm.address]) == 3
        time.sleep(0.1)  # the VM has closed all three by now
        stale = list(upstream._idle[vm.address])
        for conn in stale:  # as if closing were not seen at rest (a FIN still in flight)
            conn.closed_at_rest = lambda: False  # type: ignore[method-assign]
        before = vm.connections
        assert ask(upstream, vm.address) == ANSWER
        assert vm.connections == before + 1
        assert len([c for c in stale if c.sock is None]) == 1  # one stale one tried
    finally:
        vm.close()
