"""The three predictors learn prompt-dependent quality; the search and metrics behave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")
pytest.importorskip("torch")

from modelyard.embeddings import HashingEncoder  # noqa: E402
from modelyard.learned.knn import KnnPredictor  # noqa: E402
from modelyard.learned.metrics import pairwise_accuracy, pick_quality, spearman_per_prompt  # noqa: E402
from modelyard.learned.predictors import column_means  # noqa: E402
from modelyard.learned.scorer import load_scorer  # noqa: E402
from modelyard.learned.search import candidates, kfold, masked_mse  # noqa: E402
from modelyard.learned.train import train_scorer  # noqa: E402
from tests.learned.synth import topic_outcomes  # noqa: E402

ENCODER = HashingEncoder(dim=128)
# Small grids keep the suite fast; the search still has choices to make.
SMALL: dict[str, dict[str, Any]] = {
    "knn": {"k": [5, 20], "temperature": [0.1, 1.0], "prior_weight": [0.0, 1.0]},
    "mlp": {"head": "logistic", "c": [0.3, 3.0]},
    "mf": {"latent": 8, "l2": [1e-4, 1e-3], "epochs": 100},
}


SMALL["shared"] = {"head": "shared", "hidden": 32, "alpha": [0.1, 1.0]}


@pytest.mark.parametrize("kind", ["knn", "mlp", "mf", "shared"])
def test_each_predictor_beats_the_per_model_mean_on_unseen_prompts(kind: str) -> None:
    data = topic_outcomes(n=150)
    train, test = np.arange(100), np.arange(100, 150)
    fit_kind = "mlp" if kind == "shared" else kind
    scorer = train_scorer(fit_kind, data, train, encoder=ENCODER, folds=3, **SMALL[kind])  # type: ignore[arg-type]
    pred = scorer.predict(data.subset(test).texts)
    truth = data.quality[test]
    const = np.tile(column_means(data.quality[train]), (len(test), 1))
    assert masked_mse(pred, truth) < masked_mse(const, truth)
    # ... and it picks better models: the mean predictor always picks the same one.
    assert pick_quality(pred, truth, data.cost_usd[test]) > pick_quality(
        const, truth, data.cost_usd[test]
    )
    # The held-out report in the manifest says the same.
    held = scorer.manifest.metrics["holdout"]
    assert held["model"]["mse"] < held["baseline"]["mse"]
    assert held["prompts"] == 50


@pytest.mark.parametrize("kind", ["mlp", "mf"])
def test_training_is_reproducible_with_a_seed(kind: str) -> None:
    data = topic_outcomes(n=60)
    a = train_scorer(kind, data, encoder=ENCODER, folds=0, seed=3, **FIXED[kind])  # type: ignore[arg-type]
    b = train_scorer(kind, data, encoder=ENCODER, folds=0, seed=3, **FIXED[kind])  # type: ignore[arg-type]
    texts = data.texts[:10]
    assert np.array_equal(a.predict(texts), b.predict(texts))
    assert a.version == b.version


def test_the_shared_head_predicts_every_model_from_one_network(tmp_path: Path) -> None:
    data = topic_outcomes(n=60)
    scorer = train_scorer(
        "mlp", data, encoder=ENCODER, folds=0, head="shared", hidden=16, alpha=1.0
    )
    assert scorer.predictor.w1.shape == (ENCODER.dim, 16)  # type: ignore[attr-defined]
    assert scorer.predictor.w2.shape == (16, len(data.models))  # type: ignore[attr-defined]
    pred = scorer.predict(data.texts[:7])
    assert pred.shape == (7, len(data.models))
    assert ((pred >= 0) & (pred <= 1)).all()
    scorer.save(tmp_path / "art")
    again = load_scorer(tmp_path / "art", encoder=ENCODER)
    np.testing.assert_allclose(again.predict(data.texts[:7]), pred)
    # The per-model MLP is searched only when asked for by name.
    assert {c["head"] for c in candidates("mlp", {})} == {"logistic", "shared"}
    assert {c["head"] for c in candidates("mlp", {"head": "mlp"})} == {"mlp"}


FIXED: dict[str, dict[str, Any]] = {
    "knn": {"k": 5, "temperature": 0.2, "prior_weight": 1.0},
    "mlp": {"head": "logistic", "c": 1.0},
    "mf": {"latent": 8, "l2": 1e-3, "epochs": 50},
}


def test_knn_is_a_similarity_weighted_mean_of_the_neighbours() -> None:
    x = ENCODER.encode(["alpha beta", "gamma delta", "alpha beta gamma"])
    quality = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, np.nan]])
    exact = KnnPredictor(x, quality, k=1, temperature=0.1, prior_weight=0.0)
    assert exact.predict(x[:1]).tolist() == [[1.0, 0.0]]
    # The NaN cell is skipped: model 2's estimate comes from the neighbours that have it.
    blended = KnnPredictor(x, quality, k=3, temperature=1000.0, prior_weight=0.0).predict(x[2:3])
    assert blended[0, 0] == pytest.approx(0.5, abs=1e-3)
    assert blended[0, 1] == pytest.approx(0.5, abs=1e-3)
    # Shrinkage pulls toward the model's mean.
    shrunk = KnnPredictor(x, quality, k=1, temperature=0.1, prior_weight=1e6).predict(x[:1])
    assert shrunk[0].tolist() == pytest.approx([0.5, 0.5], abs=1e-3)


def test_no_prediction_is_nan_even_for_a_model_with_missing_outcomes() -> None:
    data = topic_outcomes(n=60)
    data.quality[::2, 0] = np.nan
    for kind in ("knn", "mlp", "mf"):
        scorer = train_scorer(kind, data, encoder=ENCODER, folds=0, **FIXED[kind])  # type: ignore[arg-type]
        pred = scorer.predict(["python loop bug", "sonnet about the moon"])
        assert not np.isnan(pred).any()
        assert ((pred >= 0) & (pred <= 1)).all()


def test_search_grid_overrides() -> None:
    assert candidates("knn", {"k": 7, "temperature": 0.1, "prior_weight": 0.0}) == [
        {"k": 7, "temperature": 0.1, "prior_weight": 0.0}
    ]
    assert {c["k"] for c in candidates("knn", {"k": [3, 4]})} == {3, 4}
    heads = candidates("mlp", {"head": "logistic"})
    assert heads
    assert {c["head"] for c in heads} == {"logistic"}
    with pytest.raises(ValueError, match="unknown predictor kind"):
        candidates("svm", {})
    with pytest.raises(ValueError, match="no mlp parameter combination"):
        candidates("mlp", {"head": "transformer"})


def test_folds_partition_the_prompts() -> None:
    folds = kfold(23, 5, seed=1)
    validation = np.concatenate([v for _, v in folds])
    assert sorted(validation.tolist()) == list(range(23))
    for train, val in folds:
        assert not set(train.tolist()) & set(val.tolist())
    assert [v.tolist() for _, v in kfold(23, 5, seed=1)] == [v.tolist() for _, v in folds]


def test_ranking_metrics_on_known_cases() -> None:
    truth = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4]])
    assert spearman_per_prompt(truth, truth) == pytest.approx(1.0)
    assert spearman_per_prompt(-truth, truth) == pytest.approx(-1.0)
    assert pairwise_accuracy(truth, truth) == 1.0
    assert pairwise_accuracy(-truth, truth) == 0.0
    cost = np.array([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0]])
    assert pick_quality(truth, truth, cost) == pytest.approx((0.9 + 0.8) / 2)
    # Among the cheaper half (cost <= median 2.0): models 2 and 3 only.
    assert pick_quality(truth, truth, cost, cheaper_half=True) == pytest.approx((0.5 + 0.8) / 2)
