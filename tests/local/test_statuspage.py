"""The status page: rendered from a real store after a real run, read by real Chromium.

The run: the service (SQLite store, the in-memory Compute of tests/fakes.py, a manual
clock) grants a lease, starts the VM, sees it busy then idle, releases the lease, stops
the VM, and records a kill switch. The page must show the pool at a glance and a
timeline with the running interval and the decisions with their reasons.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fakes import FakeCompute
from yoyo_control.adapters.clock import ManualClock
from yoyo_control.adapters.sqlite_store import SqliteStore
from yoyo_control.config import parse_config
from yoyo_control.domain.facts import HeartbeatReceived, KillRequested, RunRequested, Tick
from yoyo_control.domain.model import Heartbeat
from yoyo_control.ports import Event
from yoyo_control.service import Service
from yoyo_control.statuspage import intervals, render_html

CHROMIUM = "/usr/bin/chromium"
CONFIG = parse_config(
    {
        "pools": {
            "gpu": {
                "zone": "z",
                "instances": ["gpu-0"],
                "hourly_price_usd": 1.2,
                "idle_timeout_s": 120,
                "lease_s": 600,
            }
        }
    }
)


@pytest.fixture
def run(tmp_path: Path):
    clock = ManualClock()
    compute = FakeCompute()
    compute.add("gpu", "gpu-0")
    store = SqliteStore(tmp_path / "s.db")
    service = Service(store, compute, clock, CONFIG)
    t0 = clock.now()
    service.handle(RunRequested("m1", t0, "gpu", "cycle", "nightly batch <b>", 1800))
    clock.advance(30)
    beat = Heartbeat("gpu-0", "boot-1", clock.now(), clock.now(), busy=True, running=2)
    service.handle(HeartbeatReceived("m2", clock.now(), "gpu", beat))
    clock.advance(300)
    idle = Heartbeat("gpu-0", "boot-1", clock.now(), clock.now(), busy=False)
    service.handle(HeartbeatReceived("m3", clock.now(), "gpu", idle))
    for i in range(4):
        clock.advance(60)
        service.handle(Tick(f"t{i}", clock.now()))
    clock.advance(30)
    service.handle(KillRequested("m4", clock.now(), "budget: 10.00 of 10.00 USD", "budget"))
    return store, clock, t0


def test_intervals_come_from_the_action_events(run) -> None:
    store, clock, t0 = run
    events = store.events(limit=500)
    [span] = intervals(events, store.get_pool("gpu"), clock.now())
    assert span.instance == "gpu-0" and span.start == t0 and span.end is not None
    assert span.end - span.start >= 300  # started at t0, stopped when the lease was released


def test_the_page_escapes_and_refreshes(run) -> None:
    store, clock, _ = run
    page = render_html(store, CONFIG, clock.now())
    assert '<meta http-equiv="refresh"' in page and "<script" not in page
    assert "nightly batch &lt;b&gt;" in page and "nightly batch <b>" not in page
    assert "KILL SWITCH ENGAGED" in page and 'class="run"' in page


def _browser_or_skip() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        pytest.fail("Chromium is missing but installable here: run `make install` (make browser)")
    pytest.skip(
        "Chromium is not installed and cannot be installed here "
        "(`make browser` needs root and apt-get for Debian's chromium package)"
    )


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _browser_or_skip(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_chromium_renders_the_timeline_with_its_decisions(run, tmp_path: Path) -> None:
    store, clock, _ = run
    page = tmp_path / "status.html"
    page.write_text(render_html(store, CONFIG, clock.now()))
    shot = tmp_path / "status.png"
    dom = _chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    html = dom.stdout
    assert "Pool gpu" in html and "KILL SWITCH ENGAGED by budget" in html
    assert '<svg class="timeline"' in html
    assert html.count('class="run"') == 1  # the one running interval
    assert 'class="mark' in html and "lease epoch 1 granted to cycle" in html
    assert "idle for" in html and "lease released" in html
    done = _chromium(
        tmp_path / "profile", f"--screenshot={shot}", "--window-size=1100,1100", page.as_uri()
    )
    assert done.returncode == 0, done.stderr
    assert shot.stat().st_size > 10_000  # a real picture, not an empty page
    keep = os.environ.get("YOYO_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_the_page_shows_a_histogram_of_the_gateways_cold_starts(run) -> None:
    store, clock, _ = run
    assert "Cold starts" not in render_html(store, CONFIG, clock.now())
    for epoch, held in ((1, 95.0), (2, 0.4)):
        event = Event(
            f"cold-start:gpu:{epoch}",
            "cold-start",
            clock.now(),
            "gpu",
            reason="cold start",
            data={"instance": "gpu-0<i>", "held_s": held, "phases": {}},
        )
        store.transact(lambda tx, e=event: tx.append(e))
    page = render_html(store, CONFIG, clock.now())
    assert "Cold starts (2)" in page and "held 0.4s on gpu-0&lt;i&gt;" in page
    assert page.count('class="bar" style="width:100%"') == 2  # <1s and 60–120s, one each
