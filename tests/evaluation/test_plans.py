"""Splits never share prompts between training and testing; plans cover every prompt."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.embeddings import HashingEncoder
from modelyard.evaluation.families import Predictions, ThresholdFamily, UtilityFamily
from modelyard.evaluation.plans import cross_dataset, cross_task, in_distribution
from modelyard.evaluation.run import exclude_models
from modelyard.evaluation.splits import Split, group_folds, inner_split, kfold
from modelyard.learned.outcomes import OutcomeSet
from tests.evaluation.tiny import tiny_outcomes


def test_kfold_tests_every_prompt_once_and_never_trains_on_it() -> None:
    splits = kfold(23, 5, seed=3)
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested.tolist()) == list(range(23))
    for s in splits:
        assert not set(s.train.tolist()) & set(s.test.tolist())
        assert len(s.train) + len(s.test) == 23
    assert [s.test.tolist() for s in kfold(23, 5, seed=3)] == [s.test.tolist() for s in splits]


def test_a_split_that_shares_prompts_is_refused() -> None:
    with pytest.raises(ValueError, match="share prompts"):
        Split("bad", np.array([1, 2]), np.array([2, 3]))


def test_inner_split_stays_inside_the_training_side() -> None:
    train = np.arange(10, 60)
    inner, val = inner_split(train, seed=0)
    assert set(inner.tolist()) | set(val.tolist()) == set(train.tolist())
    assert not set(inner.tolist()) & set(val.tolist())
    assert len(val) == 10


def test_leave_one_group_out() -> None:
    splits = group_folds(["a", "b", "a", "c", "b"])
    assert [(s.name, s.test.tolist()) for s in splits] == [
        ("held out: a", [0, 2]),
        ("held out: b", [1, 4]),
        ("held out: c", [3]),
    ]


def test_plans_over_one_dataset() -> None:
    data = tiny_outcomes(12)
    plan = in_distribution(data, 3, seed=0)
    assert len(plan.splits) == 3
    assert plan.test_data is data
    # One source only: the cross-task plan clusters the prompts' vectors instead.
    plan = cross_task(data, HashingEncoder(64), seed=0, clusters=2)
    assert "2 embedding clusters" in plan.name
    assert sorted(np.concatenate([s.test.rows for s in plan.splits]).tolist()) == list(range(12))


def _renamed(data: OutcomeSet, name: str, rename: dict[str, str]) -> OutcomeSet:
    models = tuple(rename.get(m, m) for m in data.models)
    return OutcomeSet(
        name, data.prompts, models, data.quality, data.cost_usd, data.input_tokens,
        data.output_tokens,
    )  # fmt: skip


def test_cross_dataset_trains_on_one_and_tests_on_the_other_with_shared_models() -> None:
    a = _renamed(tiny_outcomes(6), "a", {})
    b = _renamed(tiny_outcomes(8), "b", {"small": "other"})
    plan = cross_dataset(a, b)
    (split,) = plan.splits
    assert (split.train.data.name, split.test.data.name) == ("a", "b")
    assert split.train.data.models == split.test.data.models == ("big", "mid")
    assert len(split.train.rows) == 6
    assert len(split.test.rows) == 8
    c = _renamed(tiny_outcomes(4), "c", {"big": "x", "mid": "y"})
    with pytest.raises(ValueError, match="share 1 model"):
        cross_dataset(a, c)


def test_exclude_models_by_glob() -> None:
    data, dropped = exclude_models(tiny_outcomes(), ["m*"])
    assert dropped == ["mid"]
    assert data.models == ("big", "small")
    with pytest.raises(ValueError, match="matches no model"):
        exclude_models(tiny_outcomes(), ["FuseChat*"])


def test_knob_grids_span_the_calibration_prompts() -> None:
    rng = np.random.default_rng(0)
    quality = rng.uniform(size=(50, 3))
    cost = np.tile([0.01, 0.001, 0.0001], (50, 1))
    pred = Predictions(("big", "mid", "small"), quality, cost)
    lams = UtilityFamily().grid(pred, 8)
    assert len(lams) == 8
    assert lams[0] == 0.0
    assert lams == sorted(lams)
    gains = quality[:, 0] - quality[:, 2]
    thresholds = ThresholdFamily("big", "small").grid(pred, 6)
    assert len(thresholds) == 6
    # The lowest sends every prompt to the strong model, the highest none.
    assert (gains > thresholds[0]).all()
    assert not (gains > thresholds[-1]).any()


def test_cross_dataset_runs_the_direction_asked_for_and_says_which() -> None:
    # Issue 9: `--cross-dataset` ran both directions plus the k-fold, unlabelled.
    from modelyard.evaluation.encoding import PrecomputedEncoder
    from modelyard.evaluation.run import Study, plans_for

    a = _renamed(tiny_outcomes(6), "a", {})
    b = _renamed(tiny_outcomes(8), "b", {})
    encoder = PrecomputedEncoder(None, name="hashing-16")
    one = plans_for(Study(data=a, cross=b, folds=0, cross_task=False), a, b, encoder)
    assert [p.name for p in one] == ["cross-dataset (train a, test b)"]
    both = plans_for(
        Study(data=a, cross=b, cross_both=True, folds=2, cross_task=False), a, b, encoder
    )
    assert [p.kind for p in both] == ["k-fold", "cross-dataset", "cross-dataset"]
    assert both[2].name == "cross-dataset (train b, test a)"
    with pytest.raises(ValueError, match="nothing to evaluate"):
        plans_for(Study(data=a, folds=0, cross_task=False), a, None, encoder)


def test_the_strong_weak_pair_is_picked_on_the_training_prompts() -> None:
    # Issue 9: the automatic pair came from the test side's means.
    from modelyard.evaluation.evaluate import pairs_for
    from modelyard.evaluation.plans import SplitSpec
    from modelyard.evaluation.sweep import Side

    data = tiny_outcomes(6)
    quality = data.quality.copy()
    quality[:3] = [[0.0, 1.0, 1.0]] * 3  # on the training rows, mid is the strongest
    quality[3:] = [[1.0, 0.0, 0.0]] * 3  # on the test rows, big is
    data = OutcomeSet(
        "t", data.prompts, data.models, quality, data.cost_usd, data.input_tokens,
        data.output_tokens,
    )  # fmt: skip
    split = SplitSpec("s", Side(data, np.arange(3)), Side(data, np.arange(3, 6)))
    assert pairs_for(split, ())[0] == ("threshold", "mid", "small")
