"""The example Grafana dashboard queries only metrics modelyard exports, and
`EXPORTED` is what the metric definitions really produce."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from modelyard.observability.metrics import ALSO_EXPORTED, EXPORTED, metrics
from modelyard.server.shedding import REQUESTS_SHED

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana-dashboard.json"
NAME = re.compile(r"\bmodelyard_[a-z_]+\b")


def exprs() -> list[str]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_every_query_names_an_exported_metric() -> None:
    queries = exprs()
    assert len(queries) >= 10
    for expr in queries:
        names = NAME.findall(expr)
        assert names, f"no modelyard metric in {expr!r}"
        unknown = set(names) - EXPORTED - ALSO_EXPORTED
        assert not unknown, f"{expr!r} queries {unknown}, which modelyard does not export"


def test_every_exported_family_has_a_panel() -> None:
    used = {n for e in exprs() for n in NAME.findall(e)}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in EXPORTED | ALSO_EXPORTED}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert families <= shown, families - shown


def test_exported_names_are_what_the_definitions_produce() -> None:
    families = metrics()
    produced: set[str] = set()
    for field in dataclasses.fields(families):
        produced |= _sample_names(getattr(families, field.name))
    assert produced == EXPORTED


def _sample_names(collector: Any) -> set[str]:
    (family,) = collector.describe()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
    }[family.type]
    return {family.name + s for s in suffixes}


def test_the_shed_counter_is_what_also_exported_names() -> None:
    assert _sample_names(REQUESTS_SHED) == ALSO_EXPORTED
