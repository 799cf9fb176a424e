"""`modelyard eval` end to end on a small synthetic dataset (hashing encoder, kNN)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from typer.testing import CliRunner

from modelyard.cli import app
from tests.evaluation.tiny import SPECIALISTS, write_topic_jsonl

runner = CliRunner()


def _eval(tmp_path: Path, *extra: str) -> tuple[int, str, Path]:
    data = write_topic_jsonl(tmp_path / "topics.jsonl")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["eval", "--data", str(data), "--encoder", "hashing-256", "--routers", "knn",
         "--folds", "2", "--knobs", "5", "--workers", "1", "--out", str(out), *extra],
    )  # fmt: skip
    return result.exit_code, result.output, out


def test_eval_writes_json_png_and_html_with_every_baseline(tmp_path: Path) -> None:
    code, output, out = _eval(tmp_path)
    assert code == 0, output
    results = json.loads((out / "results.json").read_text())
    kinds = [ev["kind"] for ev in results["evaluations"]]
    assert kinds == ["k-fold", "cross-task"]  # two sources: leave one topic out
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    page = (out / "report.html").read_text()
    assert "<svg" in page
    assert "<script" not in page

    ev = results["evaluations"][0]
    assert ev["test_prompts"] == 48
    assert sorted(p["label"] for p in ev["singles"]) == sorted(SPECIALISTS)
    assert ev["oracle"]["quality"] >= max(p["quality"] for p in ev["singles"])
    utility = ev["routers"]["knn"]["families"]["utility"]
    assert len(utility["points"]) == 5
    # The topic is in the words, so kNN routes math to mathbot and poetry to the poet:
    # far better than any random mix of single models, for far less than the frontier.
    assert utility["aiq"] > ev["aiq"]["random_mix"]
    assert utility["selected"]["cost_share_of_best"] < 0.3
    pair = ev["pairs"]["threshold"]
    assert (pair["strong"], pair["weak"]) == ("frontier", "tiny")
    assert pair["random"]["apgr"] == pytest.approx(0.5)
    assert 0.0 <= ev["routers"]["knn"]["families"]["threshold"]["cpt"]["50"] <= 1.0
    assert "single models and baselines" in output
    assert "strong/weak pairs" in output


def test_eval_refuses_an_exclusion_that_matches_nothing(tmp_path: Path) -> None:
    code, output, _ = _eval(tmp_path, "--exclude-models", "FuseChat*", "--no-cross-task")
    assert code == 2
    assert "'FuseChat*' matches no model" in output


def test_eval_refuses_an_unknown_router(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "--data", str(tmp_path), "--routers", "svm"])
    assert result.exit_code != 0
    assert "--routers" in result.output
