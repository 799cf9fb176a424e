"""Out-of-scope detection: the score in the artifact, thresholds that mean something,
escalation reasons in the ledger, and out-of-scope data in training and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.errors import LowConfidenceError, OutOfScopeError
from modelyard.ledger import InMemoryLedger
from modelyard.specialists.artifact import load_specialist, save_specialist
from modelyard.specialists.data import DataError, LabelledData, load_labelled
from modelyard.specialists.evaluate import evaluate
from modelyard.specialists.manifest import MANIFEST, read_manifest, resolve
from modelyard.specialists.oos_fit import auroc
from tests.specialists.helpers import make_rows, write_csv
from tests.specialists.test_provider import provider, request
from tests.specialists.test_routing import MODEL, ask, engine_for

ENCODER = "hashing-256"
# None of the words of the three synthetic intents (billing, shipping, login).
OUT_OF_SCOPE = [
    "what is the weather forecast for tomorrow, sunny or rain",
    "recommend a good pasta recipe with tomatoes and basil",
    "who won the football match yesterday evening",
    "translate good morning into spanish and french",
]


def test_the_artifact_carries_an_out_of_scope_section_with_a_meaningful_threshold(
    intents_dir: Path,
) -> None:
    m = read_manifest(intents_dir)
    assert m.format_version == 2
    assert m.oos is not None
    # Held-out answers are all right here, so the confidence threshold is the
    # degenerate 0 the issue found; the out-of-scope threshold must not be.
    assert m.threshold == 0.0
    assert 0 < m.oos.threshold < 1
    assert m.oos.method == "held-out-classes"
    assert "3 folds over 3 classes" in m.oos.detail
    assert 0 < m.oos.expected_inscope_answer_rate <= 1
    assert m.oos.expected_oos_recall >= m.oos.target_recall - 0.05
    assert m.threshold_rule is not None
    assert "held-out rows" in m.threshold_rule
    assert set(m.oos.auroc) == {"confidence", "knn", "mahalanobis", "combined"}


async def test_an_out_of_scope_request_escalates_with_both_scores(intents_dir: Path) -> None:
    p = provider(intents_dir, threshold=None)
    for text in OUT_OF_SCOPE:
        with pytest.raises(OutOfScopeError) as caught:
            await p.complete(request(text), "intents")
        exc = caught.value
        assert exc.oos_score is not None
        assert exc.oos_threshold is not None
        assert exc.oos_score >= exc.oos_threshold
        assert "out of scope: confidence" in exc.message
        assert "out-of-scope score" in exc.message
    # An in-scope request is answered.
    completion = await p.complete(request("I was overcharged, refund the invoice"), "intents")
    assert completion.content == "billing"


async def test_low_confidence_and_out_of_scope_are_told_apart_in_the_ledger(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = engine_for(intents_dir, ledger)
    _, outcome = await engine.complete(ask(OUT_OF_SCOPE[0]))
    assert outcome.card.id != MODEL
    first, second = await ledger.records()
    assert (first.model_id, first.status, first.error_class) == (
        MODEL,
        "escalated",
        "OutOfScopeError",
    )
    assert first.confidence is not None
    assert first.error_message is not None
    assert "out of scope" in first.error_message
    assert f"confidence {first.confidence:.3f}" in first.error_message
    assert "out-of-scope score" in first.error_message
    assert second.status == "ok"

    low = InMemoryLedger()
    await low.open()
    engine = engine_for(intents_dir, low, min_confidence=0.999, oos_threshold=1.0)
    await engine.complete(ask("please help"))
    first, _ = await low.records()
    assert first.error_class == "LowConfidenceError"
    assert first.error_message is not None
    assert first.error_message.count("threshold") == 2  # both scores, both thresholds


def test_a_format_1_artifact_still_loads_and_checks_confidence_only(
    intents_dir: Path, tmp_path: Path
) -> None:
    folder = resolve(intents_dir)
    old = tmp_path / "old" / "v0001"
    old.mkdir(parents=True)
    data = json.loads((folder / MANIFEST).read_text())
    for key in ("oos", "threshold_rule"):
        data.pop(key)
    data["format_version"] = 1
    (old / MANIFEST).write_text(json.dumps(data))
    with np.load(folder / "weights.npz") as npz:
        np.savez(old / "weights.npz", W=npz["W"], b=npz["b"])
    model = load_specialist(old)
    assert model.oos is None
    [pred] = model.classify(["my parcel is late"])
    assert pred.label == "shipping"
    assert pred.oos_score is None


def _train(tmp_path: Path, rows: list[tuple[str, str]], **kw: object) -> Path:
    from modelyard.embeddings import load_encoder
    from modelyard.specialists.train import train_specialist

    data = load_labelled(write_csv(tmp_path / "t.csv", rows), min_classes=1)
    trained = train_specialist(
        data, load_encoder(ENCODER), encoder_name=ENCODER, name="t", task="t", **kw
    )  # type: ignore[arg-type]
    return save_specialist(tmp_path / "t", trained.manifest, trained.weights)


def test_real_out_of_scope_examples_choose_the_threshold(tmp_path: Path) -> None:
    rows = make_rows(30, seed=3)
    oos = LabelledData(tuple(OUT_OF_SCOPE * 5), ("oos",) * 20, tuple(range(2, 22)), "oos.csv")
    folder = _train(tmp_path, rows, oos=oos)
    m = read_manifest(folder)
    assert m.oos is not None
    assert m.oos.method == "oos-examples"
    assert "20 out-of-scope examples from oos.csv" in m.oos.detail
    assert 0 < m.oos.threshold < 1


def test_two_classes_without_examples_have_no_out_of_scope_check(tmp_path: Path) -> None:
    rows = [r for r in make_rows(20, seed=4) if r[1] != "login"]
    m = read_manifest(_train(tmp_path, rows))
    assert m.oos is None  # nothing to simulate an unseen class with; said at training


def test_auroc_counts_ties_as_half() -> None:
    assert auroc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert auroc(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.5
    assert auroc(np.array([0.4]), np.array([0.1])) == 0.0


runner = CliRunner()


def flat(output: str) -> str:
    """Rich wraps long lines at the terminal width; compare on single spaces."""
    return " ".join(output.split())


def test_train_with_an_oos_label_and_eval_with_one(tmp_path: Path) -> None:
    rows = make_rows(30, seed=5) + [(t, "oos") for t in OUT_OF_SCOPE * 4]
    data = write_csv(tmp_path / "train.csv", rows)
    home = tmp_path / "home"
    args = ["specialist", "train", "--name", "t", "--data", str(data), "--encoder", ENCODER]
    result = runner.invoke(app, [*args, "--oos-label", "oos", "--dir", str(home)])
    assert result.exit_code == 0, result.output
    assert "oos-examples" in flat(result.output)
    m = read_manifest(home / "t")
    assert m.oos is not None
    assert "oos" not in m.labels
    test = write_csv(tmp_path / "test.csv", [*make_rows(5, seed=9), (OUT_OF_SCOPE[1], "oos")])
    ev = ["specialist", "eval", "--name", "t", "--data", str(test), "--dir", str(home)]
    plain = runner.invoke(app, ev)
    assert plain.exit_code == 2
    assert "--oos-label" in flat(plain.output)
    assert "scoring" not in flat(plain.output)  # refused before any work, not after a progress bar
    result = runner.invoke(app, [*ev, "--oos-label", "oos"])
    assert result.exit_code == 0, result.output
    assert "out of scope: 1 rows labelled 'oos'" in flat(result.output)
    report = json.loads((resolve(home / "t") / "eval.json").read_text())
    assert report["oos"]["oos_escalated"] == 1.0
    assert report["oos"]["rows"] == 1


def test_evaluate_reports_escalation_on_out_of_scope_rows(intents_dir: Path) -> None:
    model = load_specialist(intents_dir)
    rows = make_rows(10, seed=11)
    texts = tuple(t for t, _ in rows) + tuple(OUT_OF_SCOPE)
    labels = tuple(lab for _, lab in rows) + ("oos",) * len(OUT_OF_SCOPE)
    data = LabelledData(texts, labels, tuple(range(len(texts))), "mixed")
    report = evaluate(model, data, oos_label="oos")
    assert report.rows == len(rows)
    assert report.oos is not None
    assert report.oos.oos_escalated == 1.0
    assert report.oos.inscope_escalated < 0.5
    assert report.oos.auroc["combined"] > 0.9


# --- bad input -------------------------------------------------------------


def test_an_out_of_scope_file_with_in_scope_labels_is_refused_by_line(tmp_path: Path) -> None:
    from modelyard.specialists.data import load_out_of_scope

    bad = write_csv(tmp_path / "oos.csv", [(OUT_OF_SCOPE[0], "other"), ("refund me", "billing")])
    with pytest.raises(DataError, match=r"line 3: 'billing'.*Move them to the training data"):
        load_out_of_scope(bad, text="text", label="label", known=("billing",), oos_label=None)
    only_text = tmp_path / "oos2.csv"
    only_text.write_text("text\n" + "\n".join(t.replace(",", "") for t in OUT_OF_SCOPE) + "\n")
    data = load_out_of_scope(
        only_text, text="text", label="label", known=("billing",), oos_label=None
    )
    assert len(data) == len(OUT_OF_SCOPE)


def test_one_in_scope_class_plus_out_of_scope_is_a_clear_error(tmp_path: Path) -> None:
    rows = [(t, "billing") for t, lab in make_rows(10) if lab == "billing"]
    data = write_csv(tmp_path / "one.csv", rows + [(t, "oos") for t in OUT_OF_SCOPE])
    args = ["specialist", "train", "--name", "t", "--data", str(data), "--encoder", ENCODER]
    result = runner.invoke(app, [*args, "--oos-label", "oos", "--dir", str(tmp_path / "h")])
    assert result.exit_code == 2
    assert "1 in-scope class ('billing')" in flat(result.output)
    assert "at least 2" in flat(result.output)
    assert "Traceback" not in flat(result.output)


def test_an_oos_label_that_no_row_has_is_a_clear_error(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", make_rows(10))
    args = ["specialist", "train", "--name", "t", "--data", str(data), "--encoder", ENCODER]
    result = runner.invoke(app, [*args, "--oos-label", "nope", "--dir", str(tmp_path / "h")])
    assert result.exit_code == 2
    assert "no row is labelled 'nope'" in flat(result.output)


async def test_low_confidence_error_still_raised_below_the_confidence_threshold(
    intents_dir: Path,
) -> None:
    p = provider(intents_dir, threshold=0.999)
    p.settings = type(p.settings)(p.settings.path, 0.999, p.settings.cost_per_call_usd, 1.0)
    with pytest.raises(LowConfidenceError) as caught:
        await p.complete(request("please help"), "intents")
    assert not isinstance(caught.value, OutOfScopeError)
