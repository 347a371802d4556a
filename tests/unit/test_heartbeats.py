"""Heartbeat bookkeeping: which report wins, what carries over, which reports matter."""

from __future__ import annotations

from yoyo_control.domain.heartbeats import matters, merge
from yoyo_control.domain.model import Heartbeat

T0 = 1_800_000_000.0


def beat(at: float, boot: str = "b1", busy: bool = False, ready: bool = True) -> Heartbeat:
    return Heartbeat("vm-0", boot, at, at, busy=busy, ready=ready)


def test_an_older_or_repeated_report_never_replaces_the_stored_one() -> None:
    stored = merge(None, beat(T0 + 10))
    assert merge(stored, beat(T0 + 5)) is None
    assert merge(stored, beat(T0 + 10)) is None


def test_the_last_busy_time_carries_over_idle_reports() -> None:
    busy = merge(None, beat(T0, busy=True))
    idle = merge(busy, beat(T0 + 30))
    assert idle is not None and idle.last_busy_at == T0


def test_ready_since_is_the_first_ready_report_of_the_boot() -> None:
    loading = merge(None, beat(T0, ready=False))
    assert loading is not None and loading.ready_since is None
    first = merge(loading, beat(T0 + 30))
    later = merge(first, beat(T0 + 60))
    assert first is not None and later is not None
    assert first.ready_since == later.ready_since == T0 + 30
    reboot = merge(later, beat(T0 + 90, boot="b2"))
    assert reboot is not None and reboot.ready_since == T0 + 90


def test_a_new_boot_a_busy_flip_and_a_ready_flip_matter_nothing_else_does() -> None:
    idle = beat(T0)
    assert matters(None, idle)
    assert matters(idle, beat(T0 + 30, boot="b2"))
    assert matters(idle, beat(T0 + 30, busy=True))
    assert matters(beat(T0, ready=False), beat(T0 + 30))
    assert not matters(idle, beat(T0 + 30))
