"""`modelyard router train`: from an outcome file to a loadable artifact, with a summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")

from modelyard.cli import app  # noqa: E402
from modelyard.learned.scorer import load_scorer  # noqa: E402
from tests.learned.synth import topic_outcomes, write_jsonl  # noqa: E402

runner = CliRunner()


def test_train_writes_an_artifact_and_prints_a_summary(tmp_path: Path) -> None:
    data = write_jsonl(topic_outcomes(n=60), tmp_path / "outcomes.jsonl")
    out = tmp_path / "art"
    args = ["router", "train", "--data", str(data), "--kind", "knn", "--out", str(out)]
    args += ["--encoder", "hashing-64", "--folds", "3", "--holdout", "0.25"]
    args += ["--param", "k=3", "--param", "k=8", "--param", "temperature=1.0"]
    args += ["--exclude-models", "vision-mid"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"] == ["small", "frontier"]
    assert manifest["data"]["prompts"] == 45  # 25% held out
    assert manifest["params"]["k"] in (3, 8)
    # k narrowed to two values, temperature fixed, prior_weight from the default grid.
    tried = manifest["search"]
    assert sorted({t["params"]["k"] for t in tried}) == [3, 8]
    assert {t["params"]["temperature"] for t in tried} == {1.0}
    assert len(tried) == 2 * len({t["params"]["prior_weight"] for t in tried}) > 2
    assert manifest["metrics"]["holdout"]["prompts"] == 15
    scorer = load_scorer(out)
    assert scorer.version in result.output
    assert "held-out prompts" in result.output
    assert "cross-validated MSE" in result.output


def test_bad_input_exits_with_a_clear_message(tmp_path: Path) -> None:
    data = tmp_path / "outcomes.jsonl"
    data.write_text('{"prompt_id": 1, "prompt": "x", "model": "a", "quality": 3, "cost_usd": 0}\n')
    base = ["router", "train", "--data", str(data), "--out", str(tmp_path / "art")]
    result = runner.invoke(app, [*base, "--encoder", "hashing-64"])
    assert result.exit_code == 2
    assert "line 1: field 'quality'" in result.output
    good = write_jsonl(topic_outcomes(n=12), tmp_path / "good.jsonl")
    base = ["router", "train", "--data", str(good), "--out", str(tmp_path / "art")]
    result = runner.invoke(app, [*base, "--kind", "svm", "--encoder", "hashing-64"])
    assert result.exit_code == 2
    assert "--kind must be one of knn, mlp, mf" in result.output
    result = runner.invoke(app, [*base, "--encoder", "word2vec"])
    assert result.exit_code == 2
    assert "unknown encoder 'word2vec'" in result.output
    result = runner.invoke(app, [*base, "--encoder", "hashing-64", "--exclude-models", "gpt-9"])
    assert result.exit_code == 2
    assert "unknown model(s) gpt-9" in result.output
    assert not (tmp_path / "art").exists()


@pytest.mark.parametrize("kind", ["knn", "mlp"])
def test_the_deployed_artifact_is_chosen_by_the_evaluations_own_search(
    tmp_path: Path, kind: str
) -> None:
    # Issue 9: `router train` and `eval` searched with different folds and picked
    # different settings. Both now run one search: same rows, same params, same scores.
    from modelyard.embeddings import load_encoder
    from modelyard.evaluation.sweep import learned_scorer
    from modelyard.learned.outcomes import load_outcomes

    data = write_jsonl(topic_outcomes(n=60), tmp_path / "outcomes.jsonl")
    out = tmp_path / "art"
    args = ["router", "train", "--data", str(data), "--kind", kind, "--out", str(out)]
    result = runner.invoke(app, [*args, "--encoder", "hashing-64", "--holdout", "0"])
    assert result.exit_code == 0, result.output
    deployed = json.loads((out / "manifest.json").read_text())
    outcomes = load_outcomes(data)
    evaluated = learned_scorer(
        kind, outcomes, np.arange(len(outcomes)), load_encoder("hashing-64"), 0, None
    )
    manifest = evaluated.manifest  # type: ignore[attr-defined]
    assert deployed["params"] == manifest.params
    assert deployed["search"] == manifest.search
    assert len(deployed["search"]) > 1  # a real choice was made, the same way


def test_router_train_kind_verifier_writes_a_learned_verifier(tmp_path: Path) -> None:
    # Issue 10: `modelyard router train --kind verifier` trains a cascade's verifier.
    from modelyard.verifiers.learned import LearnedVerifier

    rows = []
    for i in range(40):
        good = i % 2 == 0
        for model, quality in (("cheap", 1.0 if good else 0.0), ("dear", 1.0)):
            answer = "clear answer. Confidence: 90%" if quality else "unsure. Confidence: 10%"
            rows.append({
                "prompt_id": i, "prompt": f"question {i % 5}", "model": model,
                "quality": quality, "cost_usd": 0.001, "response": answer,
            })  # fmt: skip
    data = tmp_path / "outcomes.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "verifier"
    args = ["router", "train", "--data", str(data), "--kind", "verifier", "--out", str(out)]
    result = runner.invoke(app, [*args, "--encoder", "hashing-64"])
    assert result.exit_code == 0, result.output
    verifier = LearnedVerifier(LearnedVerifier.Settings(artifact=str(out)))
    good, bad = verifier.score(
        "question 1", ["clear answer. Confidence: 90%", "unsure. Confidence: 10%"]
    )
    assert good > verifier.threshold > bad
