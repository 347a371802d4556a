"""The reliability suite's session report: how many times each invariant was checked.

At session end the tallies of reliability/invariants.py go to build/invariants.json and a
short table is printed, so the numbers can be quoted (``checks``: evaluations of the
invariant; ``relevant``: evaluations where its assertion could actually fail, as defined
in reliability/invariants.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reliability.invariants import INVARIANTS, STATS, TALLY


def _report() -> dict[str, object]:
    return {
        "invariants": INVARIANTS,
        "suites": {
            suite: {name: vars(t) for name, t in sorted(tallies.items())}
            for suite, tallies in sorted(TALLY.items())
        },
        "stats": {suite: dict(values) for suite, values in sorted(STATS.items())},
    }


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    root = Path(str(terminalreporter.config.rootpath))
    out = root / "build" / "invariants.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = _report()
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    terminalreporter.section("reliability invariants")
    for suite, tallies in sorted(TALLY.items()):
        for name, t in sorted(tallies.items()):
            terminalreporter.write_line(
                f"{suite:>14} {name:<22} checks={t.checks:<8} relevant={t.relevant}"
            )
    for suite, values in sorted(STATS.items()):
        terminalreporter.write_line(f"{suite:>14} {dict(values)}")
    terminalreporter.write_line(f"written to {out}")
