"""`modelyard verifier train` reads outcome data with responses and writes an artifact
the `learned` verifier loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("sklearn")

from modelyard.cli import app
from modelyard.verifiers.learned import LogisticModel


def write_outcomes(path: Path) -> None:
    rows = []
    for i in range(30):
        for model, good in (("cheap", i % 3 == 0), ("big", True)):
            response = "It is 42. Confidence: 95%" if good else "not sure, perhaps"
            rows.append(
                {
                    "prompt_id": i,
                    "prompt": f"question {i}",
                    "model": model,
                    "quality": 1.0 if good else 0.0,
                    "cost_usd": 0.001,
                    "response": response,
                }
            )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_train_writes_a_loadable_verifier(tmp_path: Path) -> None:
    data = tmp_path / "outcomes.jsonl"
    write_outcomes(data)
    out = tmp_path / "verifier"
    result = CliRunner().invoke(
        app,
        ["verifier", "train", "--data", str(data), "--out", str(out), "--encoder", "hashing-64"],
    )
    assert result.exit_code == 0, result.output
    model = LogisticModel.load(out)
    assert model.encoder.startswith("hashing")
    assert model.summary["examples"] == 60
    assert model.summary["train_accuracy"] >= 0.9


def test_data_without_responses_is_a_clean_error(tmp_path: Path) -> None:
    data = tmp_path / "outcomes.jsonl"
    data.write_text(
        json.dumps({"prompt_id": 1, "prompt": "q", "model": "m", "quality": 1.0, "cost_usd": 0.1})
        + "\n"
    )
    result = CliRunner().invoke(
        app, ["verifier", "train", "--data", str(data), "--out", str(tmp_path / "v")]
    )
    assert result.exit_code == 2
    assert "no responses" in result.output
