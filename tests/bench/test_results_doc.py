"""bench/RESULTS.md: every figure the hand-written goals quote is in a generated table.

The sections between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` are written by the
bench scripts; "Goals, honestly" is prose kept by hand. Each figure it quotes — a decimal
(1.39×, 0.71 s) or a count of three digits or more (7,202) — must equal, at the precision
quoted, a number in the generated sections, so the prose cannot outlive the tables it
summarises (issue 19: it quoted 3-seed figures the 10-seed tables no longer showed).
Small integers (seeds, "4 of 5") are not checked: they would match by chance.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "RESULTS.md"
NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?![\d,])|(?<![\w.,])\d+(?:\.\d+)?")
GENERATED = re.compile(r"<!-- BEGIN ([\w-]+) -->(.*?)<!-- END \1 -->", re.DOTALL)


def goals_prose(text: str) -> str:
    start = text.index("## Goals, honestly")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def quoted(prose: str) -> list[str]:
    """The figures the prose states (decimals, and counts of three digits or more)."""
    return [n for n in NUMBER.findall(prose) if "." in n or int(n.replace(",", "")) >= 100]


def matches(figure: str, values: list[float]) -> bool:
    places = len(figure.split(".")[1]) if "." in figure else 0
    target = float(figure.replace(",", ""))
    return any(abs(round(v, places) - target) < 1e-9 for v in values)


def test_every_figure_the_goals_quote_is_in_a_generated_table() -> None:
    text = RESULTS.read_text()
    tables = " ".join(body for _, body in GENERATED.findall(text))
    assert tables, "no generated section in bench/RESULTS.md"
    values = [float(n.replace(",", "")) for n in NUMBER.findall(tables)]
    figures = quoted(goals_prose(text))
    assert len(figures) >= 10, figures  # the check reads the prose it means to
    missing = [f for f in figures if not matches(f, values)]
    assert not missing, f"quoted in 'Goals, honestly' but in no generated table: {missing}"


def test_a_figure_the_tables_do_not_show_is_reported() -> None:
    values = [1.392, 7202.0, 0.712]
    assert matches("1.39", values) and matches("7,202", values) and matches("0.71", values)
    assert not matches("1.29", values) and not matches("7,203", values)
    assert quoted("met on 4 of 5 (1.39×); 7,202 reads; 27 vs 25") == ["1.39", "7,202"]
