"""Learned scorers on real outcome data (../shared/data/alpacaeval-routing).

With the NumPy hashing encoder, bag-of-words vectors carry no usable signal about
which model wins an AlpacaEval instruction (measured: held-out error within ±1% of
the per-model mean, either side), so on real data the hashing test checks the
whole path — load, train, save, load, score — and the learning claim is tested
with the real MiniLM encoder when it is installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")

from modelyard.embeddings import HashingEncoder  # noqa: E402
from modelyard.learned.outcomes import OutcomeSet, load_outcomes  # noqa: E402
from modelyard.learned.scorer import load_scorer  # noqa: E402
from modelyard.learned.train import train_scorer  # noqa: E402
from tests.data_paths import SHARED_DATA, needs_data  # noqa: E402
from tests.learned.test_predictors import FIXED  # noqa: E402

pytestmark = needs_data("alpacaeval-routing")


@pytest.fixture(scope="module")
def alpaca() -> OutcomeSet:
    return load_outcomes(SHARED_DATA / "alpacaeval-routing")


@pytest.mark.parametrize("kind", ["knn", "mlp", "mf"])
def test_a_slice_trains_saves_and_scores_end_to_end(
    alpaca: OutcomeSet, tmp_path: Path, kind: str
) -> None:
    if kind == "mf":
        pytest.importorskip("torch")
    data = alpaca.subset(range(120))
    scorer = train_scorer(
        kind, data, range(90), encoder=HashingEncoder(256), folds=0, **FIXED[kind]
    )  # type: ignore[arg-type]
    held = scorer.manifest.metrics["holdout"]
    assert held["prompts"] == 30
    assert 0 < held["model"]["mse"] < 1
    scorer.save(tmp_path / kind)
    loaded = load_scorer(tmp_path / kind)
    texts = data.subset(range(90, 120)).texts
    assert np.array_equal(loaded.predict(texts), scorer.predict(texts))
    assert loaded.models == alpaca.models


def test_minilm_knn_predicts_held_out_prompts_better_than_the_per_model_mean(
    alpaca: OutcomeSet,
) -> None:
    from modelyard.embeddings import load_encoder
    from modelyard.errors import ConfigError

    try:
        encoder = load_encoder("minilm-l6-v2")
    except ConfigError as exc:
        pytest.skip(f"the MiniLM encoder is not available here: {exc}")
    order = np.random.default_rng(0).permutation(len(alpaca))
    train = np.sort(order[: int(0.8 * len(alpaca))])
    scorer = train_scorer(
        "knn",
        alpaca,
        train,
        encoder=encoder,
        folds=5,
        k=[25, 50, 100],
        temperature=[0.2, 0.5],
        prior_weight=[0.0, 1.0],
    )
    held = scorer.manifest.metrics["holdout"]
    assert held["prompts"] == len(alpaca) - len(train)
    assert held["model"]["mse"] < held["baseline"]["mse"]
