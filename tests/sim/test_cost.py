"""``yoyoctl cost``'s report (cli/cost.py): spend, caps, projections, pauses, kills."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from yoyo_control.cli.cost import cost_report
from yoyo_control.config import parse_config
from yoyo_control.domain.decide import decide
from yoyo_control.domain.model import Desired, Instance, KillSwitch, Ledger, PoolState
from yoyo_control.sim.memory_store import MemoryStore

TZ = "Europe/Berlin"
NOW = datetime(2027, 3, 31, 12, tzinfo=ZoneInfo(TZ)).timestamp()  # 12 h left in March


def config(**caps: float) -> Any:
    return parse_config(
        {
            "timezone": TZ,
            "caps": caps,
            "pools": {
                "gpu": {"instances": ["g-0", "g-1"], "hourly_price_usd": 2.0, "daily_cap_usd": 40},
                "cpu": {"instances": ["c-0"], "hourly_price_usd": 0.5},
            },
        }
    )


def seed(store: MemoryStore) -> None:
    since = NOW - 1800
    running = Instance("g-0", Desired.RUNNING, "RUNNING", since, since)
    ledger = Ledger("2027-03-31", "2027-03", day_usd=10.0, month_usd=100.0, accrued_until=NOW - 900)
    gpu = PoolState(
        pool="gpu",
        ledger=ledger,
        instances={"g-0": running, "g-1": Instance("g-1", observed="TERMINATED")},
    )
    old = Ledger(day="2027-03-30", month="2027-03", day_usd=3.0, month_usd=5.0)
    store.transact(lambda tx: (tx.save_pool(gpu), tx.save_pool(PoolState(pool="cpu", ledger=old))))


def test_per_pool_spend_is_accrued_to_now_and_projected() -> None:
    store = MemoryStore()
    seed(store)
    report = cost_report(store, config(), NOW)
    gpu, cpu = report["pools"]["gpu"], report["pools"]["cpu"]
    assert report["day"] == "2027-03-31" and report["month"] == "2027-03"
    assert gpu["day_usd"] == pytest.approx(10.5)  # + 900 s at 2 $/h since its last accrual
    assert gpu["month_usd"] == pytest.approx(100.5)
    assert gpu["running_instances"] == 1 and gpu["run_rate_usd_per_hour"] == 2.0
    assert gpu["projected_month_usd"] == pytest.approx(100.5 + 2.0 * 12)
    assert gpu["daily_cap_usd"] == 40 and gpu["paused"] is None
    assert cpu["day_usd"] == 0 and cpu["month_usd"] == 5.0  # yesterday's day is not today's
    assert report["total"]["month_usd"] == pytest.approx(105.5)
    assert report["total"]["projected_month_usd"] == pytest.approx(105.5 + 24)
    avg = report["total"]["projected_month_usd_at_average"]
    assert avg == pytest.approx(105.5 * 31 / 30.5, rel=1e-3)
    json.dumps(report)  # plain data, for --json


def test_a_pool_at_its_cap_is_paused_until_local_midnight() -> None:
    store = MemoryStore()
    seed(store)
    conf = config()
    conf = replace(conf, pools={**conf.pools, "gpu": replace(conf.pools["gpu"], daily_cap_usd=10)})
    gpu = cost_report(store, conf, NOW)["pools"]["gpu"]
    assert gpu["paused"].startswith("daily cap 10.00 reached")
    assert gpu["paused_until"] == datetime(2027, 4, 1, tzinfo=ZoneInfo(TZ)).timestamp()


def test_a_pool_within_its_look_ahead_of_a_cap_is_paused_as_rule_2_pauses_it() -> None:
    # Two instances at $2/h and a 60 s tick: the pool pauses one instance-tick ($0.033)
    # before its cap, and the report says so as decide() does.
    store = MemoryStore()
    seed(store)
    conf = config()
    spent = cost_report(store, conf, NOW)["pools"]["gpu"]["day_usd"]
    gpu = replace(conf.pools["gpu"], daily_cap_usd=spent + 0.02)
    conf = replace(conf, pools={**conf.pools, "gpu": gpu})
    reported = cost_report(store, conf, NOW)["pools"]["gpu"]["paused"]
    decided = decide(store.get_pool("gpu"), KillSwitch(), gpu, NOW).state.paused
    assert reported is not None and reported.startswith("daily cap")
    assert reported == decided


def test_the_overall_cap_pauses_every_pool_and_shows_in_the_total() -> None:
    store = MemoryStore()
    seed(store)
    report = cost_report(store, config(monthly_usd=100), NOW)
    assert report["total"]["paused"].startswith("overall monthly cap 100.00 reached")
    month_end = datetime(2027, 4, 1, tzinfo=ZoneInfo(TZ)).timestamp()
    assert report["total"]["paused_until"] == month_end
    for pool in report["pools"].values():
        assert pool["paused"].startswith("overall monthly cap")
    assert cost_report(store, config(monthly_usd=1000), NOW)["total"]["paused"] is None


def test_budget_kills_and_caps_are_reported_separately() -> None:
    store = MemoryStore()
    assert cost_report(store, config(), NOW)["kill_switch"]["engaged"] is False
    kill = KillSwitch(True, "budget: 152.00 of 150.00 USD", "budget", NOW)
    store.transact(lambda tx: tx.save_kill(kill))
    report = cost_report(store, config(), NOW)
    assert report["kill_switch"]["budget_kill"] is True
    assert report["total"]["paused"] is None  # a kill is not a cap
    store.transact(lambda tx: tx.save_kill(KillSwitch(True, "maintenance", "ops", NOW)))
    assert cost_report(store, config(), NOW)["kill_switch"]["budget_kill"] is False


def test_a_pool_never_written_reports_zeros() -> None:
    report = cost_report(MemoryStore(), config(), NOW)
    assert report["pools"]["cpu"]["month_usd"] == 0 and report["total"]["day_usd"] == 0
