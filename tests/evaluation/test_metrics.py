"""Router metrics on hand-made numbers whose answers can be worked out on paper."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.evaluation.metrics import (
    PairCurve,
    Point,
    aiq,
    apgr,
    choose_per_prompt,
    cost_at_quality,
    cpt,
    nondecreasing_hull,
    oracle_frontier,
    oracle_pair_curve,
    oracle_point,
    pick_pair,
    random_pair_curve,
    single_model_points,
    zero_router,
)


def test_hull_drops_points_under_a_chord_and_after_the_best() -> None:
    # (2, .6) lies under the chord (1, .5)-(3, .9) (which passes .7 at x=2);
    # (4, .8) costs more than the best point and is worse: not on a non-decreasing hull.
    xs, ys = nondecreasing_hull(np.array([2.0, 1.0, 4.0, 3.0]), np.array([0.6, 0.5, 0.8, 0.9]))
    assert xs.tolist() == [1.0, 3.0]
    assert ys.tolist() == [0.5, 0.9]


def test_hull_keeps_a_point_above_the_chord_and_the_best_of_equal_costs() -> None:
    xs, ys = nondecreasing_hull(np.array([1.0, 2.0, 2.0, 3.0]), np.array([0.5, 0.6, 0.8, 0.9]))
    assert xs.tolist() == [1.0, 2.0, 3.0]
    assert ys.tolist() == [0.5, 0.8, 0.9]


def test_aiq_is_the_area_under_the_hull_over_the_range() -> None:
    points = [Point("a", 1.0, 0.5), Point("b", 2.0, 0.6), Point("c", 3.0, 0.9)]
    # [1, 3]: trapezoid (0.5 + 0.9) / 2 * 2 = 1.4; [3, 5]: flat at 0.9 → 1.8; / 4.
    assert aiq(points, 1.0, 5.0) == pytest.approx(0.8)
    # Left of the cheapest point the router has nothing to offer: 0 on [0, 1).
    assert aiq(points, 0.0, 3.0) == pytest.approx(1.4 / 3)
    # An empty-width range is the hull's value there (the limit of the mean).
    assert aiq(points, 2.0, 2.0) == pytest.approx(0.7)  # on the chord from a to c
    assert aiq(points, 0.5, 0.5) == 0.0
    with pytest.raises(ValueError, match="hi >= lo"):
        aiq(points, 2.0, 1.0)


def test_zero_router_is_the_hull_of_the_single_models() -> None:
    quality = np.array([[1.0, 0.0, 0.5], [1.0, 1.0, 0.5]])
    cost = np.array([[3.0, 1.0, 2.5], [3.0, 1.0, 2.5]]) / 1000
    singles = single_model_points(quality, cost, ("big", "small", "meh"))
    assert [(p.label, p.cost_per_1k, p.quality) for p in singles] == [
        ("big", pytest.approx(3.0), 1.0),
        ("small", pytest.approx(1.0), 0.5),
        ("meh", pytest.approx(2.5), 0.5),
    ]
    # "meh" is dominated by mixes of small and big.
    assert [(p.cost_per_1k, p.quality) for p in zero_router(singles)] == [
        (pytest.approx(1.0), 0.5),
        (pytest.approx(3.0), 1.0),
    ]


def test_oracle_takes_the_best_answer_and_the_cheaper_model_on_ties() -> None:
    quality = np.array([[1.0, 1.0], [0.0, 1.0], [0.7, np.nan]])
    cost = np.array([[2.0, 1.0], [1.0, 2.0], [5.0, 0.1]])
    assert choose_per_prompt(quality, cost, 0.0).tolist() == [1, 1, 0]
    # λ = ∞: the cheapest model with an outcome, whatever its quality.
    assert choose_per_prompt(quality, cost, np.inf).tolist() == [1, 0, 1]
    point = oracle_point(quality, cost)
    assert point.quality == pytest.approx((1 + 1 + 0.7) / 3)
    assert point.cost_per_1k == pytest.approx((1 + 2 + 5) / 3 * 1000)


def test_the_oracle_frontier_runs_from_cheapest_to_best() -> None:
    quality = np.array([[1.0, 0.0], [1.0, 1.0]])
    cost = np.array([[0.010, 0.001], [0.010, 0.001]])
    frontier = oracle_frontier(quality, cost)
    best = max(frontier, key=lambda p: p.quality)
    cheapest = min(frontier, key=lambda p: p.cost_per_1k)
    assert (best.quality, best.cost_per_1k) == (1.0, pytest.approx(5.5))
    assert (cheapest.quality, cheapest.cost_per_1k) == (0.5, pytest.approx(1.0))
    # Nothing on the frontier beats the oracle's quality or costs less than the cheapest.
    assert all(cheapest.cost_per_1k <= p.cost_per_1k and p.quality <= 1.0 for p in frontier)


def _dominated_pair() -> tuple[np.ndarray, np.ndarray]:
    """strong right on all 4 prompts; weak right on the first two: q_s = 1, q_w = 0.5."""
    return np.array([1.0, 1.0, 1.0, 1.0]), np.array([1.0, 1.0, 0.0, 0.0])


def test_oracle_pair_curve_apgr_and_cpt_by_hand() -> None:
    strong, weak = _dominated_pair()
    curve = oracle_pair_curve(strong, weak)
    # k strong calls go where the weak model fails: PGR 0, .5, 1, 1, 1 at 0..100%.
    assert curve.strong_share.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert curve.quality.tolist() == [0.5, 0.75, 1.0, 1.0, 1.0]
    # Area: .25·(0+.5)/2 + .25·(.5+1)/2 + .25 + .25 = 0.75.
    assert apgr(curve, 0.5, 1.0) == pytest.approx(0.75)
    assert cpt(curve, 0.5, 1.0, 0.5) == pytest.approx(0.25)
    assert cpt(curve, 0.5, 1.0, 0.2) == pytest.approx(0.10)
    assert cpt(curve, 0.5, 1.0, 0.8) == pytest.approx(0.40)


def test_complementary_pair_oracle_overshoots_the_strong_model() -> None:
    # The weak model is right exactly where the strong one is wrong: q_s = .75, q_w = .25.
    # The oracle's PGR is 0, .5, 1, 1.5, 1 at 0..100% strong calls (at 75% it is right
    # everywhere); area .0625 + .1875 + .3125 + .3125 = 0.875.
    strong = np.array([1.0, 1.0, 1.0, 0.0])
    weak = np.array([0.0, 0.0, 0.0, 1.0])
    curve = oracle_pair_curve(strong, weak)
    assert curve.quality.tolist() == [0.25, 0.5, 0.75, 1.0, 0.75]
    assert apgr(curve, 0.25, 0.75) == pytest.approx(0.875)
    assert cpt(curve, 0.25, 0.75, 1.0) == pytest.approx(0.5)


def test_random_routing_recovers_the_gap_linearly() -> None:
    curve = random_pair_curve(q_strong=0.9, q_weak=0.3)
    assert apgr(curve, 0.3, 0.9) == pytest.approx(0.5)
    for target in (0.2, 0.5, 0.8):
        assert cpt(curve, 0.3, 0.9, target) == pytest.approx(target)


def test_router_points_are_joined_with_both_endpoints() -> None:
    # One point: 20% strong calls recover 60% of the gap.
    curve = PairCurve(np.array([0.2]), np.array([0.5 + 0.6 * 0.5]))
    # (0,0)→(.2,.6)→(1,1): .2·.3 + .8·.8 = 0.70.
    assert apgr(curve, 0.5, 1.0) == pytest.approx(0.70)
    assert cpt(curve, 0.5, 1.0, 0.3) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no gap"):
        apgr(curve, 0.5, 0.5)


def test_pick_pair_is_the_best_and_the_cheapest_other() -> None:
    quality = np.array([[0.9, 0.2, 0.1, 0.5]])
    cost = np.array([[5.0, 1.0, 1.0, 2.0]])
    # Two equally cheap models: the better one is the weak model.
    assert pick_pair(quality, cost, ("a", "b", "c", "d")) == ("a", "b")


def test_cost_at_quality_reads_the_hull() -> None:
    points = [Point("a", 1.0, 0.5), Point("b", 3.0, 0.9)]
    assert cost_at_quality(points, 0.7) == pytest.approx(2.0)
    assert cost_at_quality(points, 0.4) == pytest.approx(1.0)
    assert cost_at_quality(points, 0.95) is None
