"""The agent reads the store (kill switch, lease) at most once per store interval."""

from __future__ import annotations

import threading

from yoyo_control.adapters.clock import ManualClock
from yoyo_control.agent.loop import Agent
from yoyo_control.agent.policy import Settings
from yoyo_control.domain.model import KillSwitch, PoolState


class CountingStore:
    def __init__(self) -> None:
        self.reads = 0
        self.kill = KillSwitch()

    def get_kill(self) -> KillSwitch:
        self.reads += 1
        return self.kill

    def get_pool(self, pool: str) -> PoolState:
        return PoolState(pool=pool)


class NullPublisher:
    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        return "1"


def test_the_store_is_read_once_per_interval_and_a_kill_is_seen_at_the_next_read() -> None:
    clock, store = ManualClock(), CountingStore()
    agent = Agent(
        settings=Settings("p", "vm-0", "b", 30, idle_shutdown_s=600, deadman_grace_s=600),
        topic="yoyo-heartbeat",
        store=store,  # type: ignore[arg-type]
        publisher=NullPublisher(),
        read_metrics=lambda: None,
        poweroff=lambda: None,
        clock=clock,
        preempted=threading.Event(),
        store_every_s=30.0,
    )
    for _ in range(30):  # 30 one-second polls
        agent.observe()
        clock.advance(1)
    assert store.reads == 1
    store.kill = KillSwitch(True, "stop", "ops")
    assert agent.observe().kill is not None and agent.observe().kill.engaged
    assert store.reads == 2
