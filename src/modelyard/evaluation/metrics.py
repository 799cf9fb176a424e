"""Router metrics as the field defines them, on plain NumPy arrays.

Conventions: quality is a mean over prompts in 0..1; cost is US dollars per 1,000
requests (the unit RouterBench and most price pages use for a workload).

- **Single models**: each model answering every prompt.
- **Oracle**: per prompt the best quality, the cheapest model among ties. Swept over
  a willingness-to-pay λ (per prompt: argmax quality − λ·cost) it traces the best
  cost–quality frontier any router could reach on these outcomes.
- **Zero router** (RouterBench): a random mix of single models; its curve is the
  non-decreasing convex hull of the single models' points.
- **AIQ** (RouterBench's Average Improvement in Quality): the area under a router's
  non-decreasing convex hull over a shared cost range [lo, hi], divided by hi − lo.
  Left of a router's cheapest point the hull is 0 (no setting of the router spends
  that little); right of its dearest point it stays flat (spending less than the
  budget is always allowed).
- **APGR / CPT** (RouteLLM), for a strong/weak pair: PGR = (q − q_weak) /
  (q_strong − q_weak); APGR = ∫₀¹ PGR d(share of strong calls), the router's points
  joined linearly with the two endpoints (all weak, all strong); CPT(x) = the
  smallest share of strong calls at which the joined curve reaches PGR = x.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
PER_1K = 1000.0


@dataclass(frozen=True, slots=True)
class Point:
    """One operating point: a model, a baseline or a router at one knob value."""

    label: str
    cost_per_1k: float
    quality: float
    knob: float | None = None
    strong_share: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "cost_per_1k": self.cost_per_1k,
            "quality": self.quality,
            "knob": self.knob,
            "strong_share": self.strong_share,
        }


def _masked_quality(quality: Floats) -> Floats:
    """Missing outcomes (NaN) can never be the best choice."""
    return np.where(np.isnan(quality), -np.inf, quality)


def single_model_points(quality: Floats, cost: Floats, models: tuple[str, ...]) -> list[Point]:
    """Every model answering every prompt: mean quality and cost per 1k requests."""
    return [
        Point(m, float(np.nanmean(cost[:, j])) * PER_1K, float(np.nanmean(quality[:, j])))
        for j, m in enumerate(models)
    ]


def choose_per_prompt(quality: Floats, cost: Floats, lam: float) -> Ints:
    """Per prompt, the model maximising quality − λ·cost; ties go to the cheaper one.

    λ = 0 is the oracle (best quality, cheapest among ties); λ = ∞ the cheapest model."""
    q = _masked_quality(quality)
    c = np.nan_to_num(cost, nan=np.inf)
    utility = -c if np.isinf(lam) else q - lam * np.where(np.isfinite(c), c, 0.0)
    best = utility.max(axis=1, keepdims=True)
    # Among models within float noise of the best utility, the cheapest wins.
    tied = np.isclose(utility, best, rtol=0.0, atol=1e-12)
    return np.asarray(np.where(tied, c, np.inf).argmin(axis=1), dtype=np.int64)


def point_of_choices(label: str, quality: Floats, cost: Floats, choice: Ints) -> Point:
    rows = np.arange(len(choice))
    q = np.nan_to_num(quality[rows, choice], nan=0.0)
    return Point(label, float(cost[rows, choice].mean()) * PER_1K, float(q.mean()))


def oracle_point(quality: Floats, cost: Floats) -> Point:
    """Best quality per prompt, cheapest model among ties."""
    return point_of_choices("oracle", quality, cost, choose_per_prompt(quality, cost, 0.0))


def oracle_frontier(quality: Floats, cost: Floats, max_points: int = 200) -> list[Point]:
    """The oracle swept over λ: the best (cost, quality) trade-offs these outcomes allow.

    The λ values are the switch points of the per-prompt choices (where two models'
    quality − λ·cost cross), thinned to `max_points` quantiles."""
    q = np.nan_to_num(quality, nan=0.0)
    c = np.nan_to_num(cost, nan=0.0)
    dq = q[:, :, None] - q[:, None, :]
    dc = c[:, :, None] - c[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = dq / dc
    switch = ratios[(dc > 0) & (dq > 0)]
    lams: list[float] = (
        np.unique(np.quantile(switch, np.linspace(0, 1, max_points))).tolist()
        if switch.size
        else []
    )
    points = [point_of_choices("oracle λ=0", quality, cost, choose_per_prompt(quality, cost, 0))]
    for lam in [*lams, np.inf]:
        choice = choose_per_prompt(quality, cost, float(lam))
        points.append(point_of_choices(f"oracle λ={lam:.4g}", quality, cost, choice))
    return points


def nondecreasing_hull(costs: Floats, qualities: Floats) -> tuple[Floats, Floats]:
    """The non-decreasing (upper) convex hull of points, as knots sorted by cost.

    Mixing two operating points at random reaches every point on the segment between
    them, so the upper concave envelope is achievable; past the best point spending
    more never helps, so the hull stops there (and is read as flat beyond it)."""
    pts = sorted(zip(np.asarray(costs, float), np.asarray(qualities, float), strict=True))
    hull: list[tuple[float, float]] = []
    for x, y in pts:
        if hull and x == hull[-1][0]:
            if y <= hull[-1][1]:
                continue
            hull.pop()
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], (x, y)) >= 0:
            hull.pop()
        hull.append((x, y))
    best = max(range(len(hull)), key=lambda i: (hull[i][1], -hull[i][0]))
    kept = hull[: best + 1]
    return np.array([p[0] for p in kept]), np.array([p[1] for p in kept])


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """> 0 when o→a→b turns left (a lies below the chord o→b: not on the upper hull)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def hull_value(xs: Floats, ys: Floats, cost: float) -> float:
    """The hull's quality at `cost`: 0 left of its cheapest knot, flat right of its last."""
    if cost < xs[0]:
        return 0.0
    return float(np.interp(cost, xs, ys))


def aiq(points: list[Point], lo: float, hi: float) -> float:
    """Area under the points' non-decreasing convex hull over [lo, hi], divided by hi − lo
    (for hi == lo, the hull's value at lo)."""
    if not points:
        raise ValueError("AIQ of no points")
    if hi < lo:
        raise ValueError(f"AIQ needs a cost range with hi >= lo, got [{lo}, {hi}]")
    xs, ys = nondecreasing_hull(
        np.array([p.cost_per_1k for p in points]), np.array([p.quality for p in points])
    )
    if hi == lo:
        # The mean over an empty-width range is its limit: the hull's value there (the
        # range "up to the best single model's cost" when that model is the cheapest).
        return hull_value(xs, ys, lo)
    start = max(lo, float(xs[0]))
    if start >= hi:
        return 0.0
    knots = np.unique(np.concatenate([[start, hi], xs[(xs > start) & (xs < hi)]]))
    values = np.interp(knots, xs, ys)
    return float(np.trapezoid(values, knots)) / (hi - lo)


def zero_router(singles: list[Point]) -> list[Point]:
    """RouterBench's Zero router: random mixes of single models = their hull's knots."""
    xs, ys = nondecreasing_hull(
        np.array([p.cost_per_1k for p in singles]), np.array([p.quality for p in singles])
    )
    return [Point("random mix (hull)", float(x), float(y)) for x, y in zip(xs, ys, strict=True)]


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True, slots=True)
class PairCurve:
    """A two-model router's points: share of calls to the strong model vs mean quality."""

    strong_share: Floats
    quality: Floats


def pgr(quality: Floats | float, q_weak: float, q_strong: float) -> Floats:
    """Performance gap recovered: 0 at the weak model's quality, 1 at the strong one's."""
    gap = q_strong - q_weak
    if gap == 0:
        raise ValueError("the strong and weak models have equal quality: no gap to recover")
    return (np.asarray(quality, dtype=float) - q_weak) / gap


def _joined(curve: PairCurve, q_weak: float, q_strong: float) -> tuple[Floats, Floats]:
    """The curve with both endpoints, sorted by share, equal shares averaged → (x, PGR)."""
    shares = np.concatenate([[0.0], np.asarray(curve.strong_share, float), [1.0]])
    qualities = np.concatenate([[q_weak], np.asarray(curve.quality, float), [q_strong]])
    xs, inverse = np.unique(shares, return_inverse=True)
    sums = np.bincount(inverse, weights=qualities)
    counts = np.bincount(inverse)
    return xs, pgr(sums / counts, q_weak, q_strong)


def apgr(curve: PairCurve, q_weak: float, q_strong: float) -> float:
    """Average PGR over the share of strong calls, 0..100%."""
    xs, ys = _joined(curve, q_weak, q_strong)
    return float(np.trapezoid(ys, xs))


def cpt(curve: PairCurve, q_weak: float, q_strong: float, target: float) -> float:
    """The smallest share of strong calls (0..1) at which PGR reaches `target` (0..1)."""
    xs, ys = _joined(curve, q_weak, q_strong)
    if ys[0] >= target:
        return 0.0
    for i in range(1, len(xs)):
        if ys[i] >= target:
            frac = (target - ys[i - 1]) / (ys[i] - ys[i - 1])
            return float(xs[i - 1] + frac * (xs[i] - xs[i - 1]))
    return 1.0  # the endpoint (all strong) has PGR 1 by construction


def oracle_pair_curve(q_strong: Floats, q_weak: Floats) -> PairCurve:
    """The best possible pair router: k strong calls go to the k prompts where the strong
    model gains most over the weak one, for every k."""
    gains = np.sort(np.nan_to_num(q_strong - q_weak, nan=0.0))[::-1]
    n = len(gains)
    base = float(np.nanmean(q_weak))
    quality = base + np.concatenate([[0.0], np.cumsum(gains)]) / n
    return PairCurve(np.arange(n + 1) / n, quality)


def random_pair_curve(q_strong: float, q_weak: float, steps: int = 11) -> PairCurve:
    """Sending a random share p of calls to the strong model: expected quality is linear."""
    shares = np.linspace(0.0, 1.0, steps)
    return PairCurve(shares, (1 - shares) * q_weak + shares * q_strong)


def pick_pair(quality: Floats, cost: Floats, models: tuple[str, ...]) -> tuple[str, str]:
    """(strong, weak): the highest mean quality, and the cheapest model other than it
    (higher quality among equally cheap ones)."""
    mean_q = np.nanmean(quality, axis=0)
    mean_c = np.nanmean(cost, axis=0)
    strong = int(np.argmax(mean_q))
    others = [j for j in range(len(models)) if j != strong]
    if not others:
        raise ValueError("a strong/weak pair needs at least two models")
    weak = min(others, key=lambda j: (mean_c[j], -mean_q[j], models[j]))
    return models[strong], models[weak]


def cost_at_quality(points: list[Point], target: float) -> float | None:
    """The cheapest cost per 1k at which the points' hull reaches `target` quality."""
    xs, ys = nondecreasing_hull(
        np.array([p.cost_per_1k for p in points]), np.array([p.quality for p in points])
    )
    if ys[-1] < target:
        return None
    if ys[0] >= target:
        return float(xs[0])
    i = int(np.argmax(ys >= target))
    frac = (target - ys[i - 1]) / (ys[i] - ys[i - 1])
    return float(xs[i - 1] + frac * (xs[i] - xs[i - 1]))
