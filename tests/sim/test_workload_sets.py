"""The keep-alive's workload sets stay apart (bench/heldout.py, bench/keepalive_dev.py).

Issue 18 judges generalisation on held-out sets: a workload tuned on (the benchmark's
NAMED, the development set DEV) must not reappear in HELD_OUT or FRESH, nor may their
seeds overlap. A transform is identified by (trace, k, s); seeds by the set's seed list.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

from yoyo_control.sim.workload import NAMED, resolve

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))  # keepalive_dev imports its neighbours by name
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def _transforms(specs: dict[str, str]) -> set[tuple[str, int, float]]:
    parts = [part for text in specs.values() for part in text.split("+")]
    return {(w.trace, w.k, w.s) for w in map(resolve, (p.strip() for p in parts))}


def test_no_transform_or_seed_is_shared_between_the_sets() -> None:
    heldout, dev, days = _load("heldout"), _load("keepalive_dev"), _load("keepalive_days")
    sets = {
        "benchmark": (NAMED, set(range(10))),
        "dev": (dev.DEV, set(dev.DEV_SEEDS)),
        "held-out": (heldout.HELD_OUT, set(heldout.SEEDS)),
        "fresh": (heldout.FRESH, set(heldout.FRESH_SEEDS)),
        "days-fresh": (heldout.DAYS_FRESH, set(heldout.DAYS_FRESH_SEEDS)),
        # The multi-day benchmark shares the benchmark's seeds (0…9), not its transforms.
        "days": (days.DAYS, set()),
    }
    for (a, (specs_a, seeds_a)), (b, (specs_b, seeds_b)) in itertools.combinations(sets.items(), 2):
        assert not _transforms(specs_a) & _transforms(specs_b), (a, b)
        assert not seeds_a & seeds_b, (a, b)
    assert set(dev.DEV_BURSTY) <= set(dev.DEV)
    assert set(heldout.DAYS_FRESH_DAILY) <= set(heldout.DAYS_FRESH)
    assert set(days.DAYS_DAILY) <= set(days.DAYS)
    assert not set(days.DAYS_SEEDS) & set(heldout.DAYS_FRESH_SEEDS)
