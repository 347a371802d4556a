"""Which facts are about one pool (domain/facts.py): the unions, not attribute probing."""

from __future__ import annotations

import typing

from yoyo_control.domain import facts as f
from yoyo_control.domain.model import Heartbeat, KillSwitch

POOL_FACTS = [
    f.RunRequested("m", 1.0, "gpu", holder="cycle", reason="r", duration_s=60.0),
    f.QueueDepthObserved("m", 1.0, "gpu", depth=3, source="producer"),
    f.LoadReported("m", 1.0, "gpu", in_flight=3, held=1),
    f.BatchDemandObserved("m", 1.0, "gpu", shards=2, progress_at=0.5, retry_at=0.25),
    f.HeartbeatReceived("m", 1.0, "gpu", Heartbeat("vm-1", "b1", 1.0, 1.0)),
    f.StopRequested("m", 1.0, "gpu", by="op", reason="r"),
    f.ExtendRequested("m", 1.0, "gpu", by="op", duration_s=60.0),
    f.StatusObserved("m", 1.0, "gpu"),
]
GLOBAL_FACTS = [
    f.Tick("m", 1.0),
    f.KillRequested("m", 1.0, reason="r", by="op"),
    f.UnkillRequested("m", 1.0, by="op"),
    f.KillSwitchWritten("m", 1.0, KillSwitch()),
    f.BudgetNotified("m", 1.0, "b", "B", cost=1.0, amount=2.0, currency="USD"),
]


def test_the_examples_cover_both_unions() -> None:
    assert {type(x) for x in POOL_FACTS} == set(typing.get_args(f.PoolFact))
    assert {type(x) for x in GLOBAL_FACTS} == set(typing.get_args(f.GlobalFact))


def test_a_pool_fact_names_its_pool_and_a_global_fact_none() -> None:
    assert [f.pool_of(x) for x in POOL_FACTS] == ["gpu"] * len(POOL_FACTS)
    assert [f.pool_of(x) for x in GLOBAL_FACTS] == [None] * len(GLOBAL_FACTS)
