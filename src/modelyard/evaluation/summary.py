"""From a plan's ledger-derived runs to every number the report shows.

Test prompts of all splits are pooled (each prompt is tested once per plan) for the
headline curves and metrics; per-split values are kept alongside to show the spread
across folds. Everything here is plain data (`dict`s of floats), ready for JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.evaluation.bootstrap import (
    Curve,
    Statistic,
    aiq_between,
    paired_interval,
    resamples,
)
from modelyard.evaluation.cascade_summary import cascade_curve, summarise_cascades
from modelyard.evaluation.cascades import CascadeResult
from modelyard.evaluation.evaluate import PlanRuns
from modelyard.evaluation.harness import RoutedRun
from modelyard.evaluation.metrics import (
    PER_1K,
    PairCurve,
    Point,
    aiq,
    apgr,
    cost_at_quality,
    cpt,
    oracle_frontier,
    oracle_pair_curve,
    oracle_point,
    random_pair_curve,
    zero_router,
)
from modelyard.evaluation.sweep import SELECTED, RouterResult

CPT_LEVELS = (0.2, 0.5, 0.8)
# The target of issue 9: the best single model's quality at <= 50% of its cost.
COST_SHARE_TARGET = 0.5
# Routers a learned router must beat (besides the random mix of single models).
BASELINE_ROUTERS = ("mean", "category")


def _concat(runs: Sequence[RoutedRun]) -> RoutedRun:
    return RoutedRun(
        policy=runs[0].policy,
        rows=np.concatenate([r.rows for r in runs]),
        model=np.concatenate([r.model for r in runs]),
        cost=np.concatenate([r.cost for r in runs]),
        quality=np.concatenate([r.quality for r in runs]),
        attempts=np.concatenate([r.attempts for r in runs]),
        failed=sum(r.failed for r in runs),
    )


def _subset(run: RoutedRun, rows: npt.NDArray[np.int64]) -> RoutedRun:
    keep = np.isin(run.rows, rows)
    return RoutedRun(
        run.policy,
        run.rows[keep],
        run.model[keep],
        run.cost[keep],
        run.quality[keep],
        run.attempts[keep],
        int((run.model[keep] < 0).sum()),
    )


def _mean_std(values: Sequence[float | None]) -> dict[str, float | None]:
    xs = [v for v in values if v is not None]
    if not xs:
        return {"mean": None, "std": None}
    return {"mean": float(np.mean(xs)), "std": float(np.std(xs))}


class Summariser:
    """Computes the summary of one `PlanRuns`."""

    def __init__(self, runs: PlanRuns) -> None:
        self.runs = runs
        self.data = runs.plan.test_data
        self.rows = np.unique(np.concatenate([s.test.rows for s in runs.plan.splits]))
        self.split_rows = {s.name: s.test.rows for s in runs.plan.splits}
        self.tasks = {(t.split, t.router): t for t in runs.tasks}
        self.singles = [runs.singles[m].point(m) for m in self.data.models]
        self.lo = min(p.cost_per_1k for p in self.singles)
        self.hi = max(p.cost_per_1k for p in self.singles)
        self.oracle_curve = oracle_frontier(
            self.data.quality[self.rows], self.data.cost_usd[self.rows]
        )
        self.oracle_aiq = aiq(self.oracle_curve, self.lo, self.hi)
        self.samples = resamples(len(self.rows), seed=0)

    def single_run(self, model: str, split: str | None = None) -> RoutedRun:
        run = self.runs.singles[model]
        return run if split is None else _subset(run, self.split_rows[split])

    def summary(self) -> dict[str, Any]:
        data = self.data
        best = max(self.singles, key=lambda p: (p.quality, -p.cost_per_1k))
        routers: dict[str, Any] = {}
        for router in dict.fromkeys(r.router for r in self.runs.results):
            results = [r for r in self.runs.results if r.router == router]
            routers[router] = self.router_summary(router, results, best)
        zero = zero_router(self.singles)
        return {
            "name": self.runs.plan.name,
            "kind": self.runs.plan.kind,
            "test_dataset": data.name,
            "test_prompts": len(self.rows),
            "models": list(data.models),
            "splits": [self.split_info(s.name) for s in self.runs.plan.splits],
            "cost_range_per_1k": {"lo": self.lo, "hi": self.hi, "best_single": best.cost_per_1k},
            "singles": [p.as_dict() for p in self.singles],
            "best_single": best.as_dict(),
            "oracle": oracle_point(data.quality[self.rows], data.cost_usd[self.rows]).as_dict(),
            "oracle_frontier": [p.as_dict() for p in self.oracle_curve],
            "random_mix": [p.as_dict() for p in zero],
            "aiq": {
                "oracle": self.oracle_aiq,
                "random_mix": aiq(zero, self.lo, self.hi),
                "oracle_to_best_single": aiq(self.oracle_curve, self.lo, best.cost_per_1k),
                "random_mix_to_best_single": aiq(zero, self.lo, best.cost_per_1k),
            },
            "pairs": self.pair_baselines(),
            "routers": routers,
            "cascades": self.cascades(best),
            "comparisons": self.comparisons(best),
        }

    def cascade_families(self) -> dict[str, list[CascadeResult]]:
        families: dict[str, list[CascadeResult]] = {}
        for result in self.runs.cascades:
            if result.runs:
                families.setdefault(result.family, []).append(result)
        return families

    def cascades(self, best: Point) -> dict[str, Any]:
        """Each cascade family's figures (`cascade_summary`)."""
        return {
            family: summarise_cascades(
                results,
                self.data,
                self.runs.singles,
                self.aiq_statistics(best),
                self.samples,
                self.lo,
                self.hi,
                best,
            )
            for family, results in self.cascade_families().items()
        }

    def router_curve(self, router: str) -> Curve:
        """A router's N-model families together, pooled over splits: its frontier."""
        results = [r for r in self.runs.results if r.router == router]
        curves = [
            Curve.of([_concat([r.runs[name][k] for r in results]) for k in range(len(runs))])
            for name, runs in results[0].runs.items()
            if name in SELECTED
        ]
        total = curves[0]
        for curve in curves[1:]:
            total = total + curve
        return total

    def aiq_statistics(self, best: Point) -> dict[str, Statistic]:
        return {
            "aiq": aiq_between(self.lo, self.hi),
            "aiq_to_best_single": aiq_between(self.lo, best.cost_per_1k),
        }

    def frontier(self, router: str, best: Point) -> dict[str, float]:
        """AIQ of the router's families together (the best it offers at each cost)."""
        curve = self.router_curve(router)
        ones = np.ones(len(curve.rows))
        out = {name: fn(curve, ones) for name, fn in self.aiq_statistics(best).items()}
        out["aiq_vs_oracle"] = out["aiq"] / self.oracle_aiq if self.oracle_aiq else float("nan")
        return out

    def comparisons(self, best: Point) -> dict[str, Any]:
        """Each router against each baseline router and the random mix, by AIQ over the
        whole cost range and up to the best single model's cost: paired bootstrap
        intervals over the test prompts (see `bootstrap`)."""
        routers = list(dict.fromkeys(r.router for r in self.runs.results))
        curves = {name: self.router_curve(name) for name in routers}
        families = self.cascade_families()
        curves |= {family: cascade_curve(results) for family, results in families.items()}
        curves["random mix"] = Curve.of([self.single_run(m) for m in self.data.models])
        stats = self.aiq_statistics(best)
        against = [b for b in BASELINE_ROUTERS if b in curves] + ["random mix"]
        # A cascade family is set against every prompt-only router and the random mix.
        plan = {r: against for r in routers} | {f: [*routers, "random mix"] for f in families}
        return {
            router: {
                base: {
                    stat: paired_interval(curves[router], curves[base], fn, self.samples)
                    for stat, fn in stats.items()
                }
                for base in bases
                if base != router
            }
            for router, bases in plan.items()
        }

    def split_info(self, name: str) -> dict[str, Any]:
        spec = next(s for s in self.runs.plan.splits if s.name == name)
        task = next(t for t in self.runs.tasks if t.split == name) if self.runs.tasks else None
        return {
            "name": name,
            "train_dataset": spec.train.data.name,
            "train_prompts": len(spec.train.rows),
            "test_prompts": len(spec.test.rows),
            "best_model": task.best_model if task else None,
            "pairs": [list(p) for p in task.pairs] if task else [],
        }

    def pair_baselines(self) -> dict[str, Any]:
        """Per pair label: the models, their test quality, random and oracle APGR/CPT."""
        out: dict[str, Any] = {}
        for task in self.runs.tasks:
            for label, strong, weak in task.pairs:
                if label in out:
                    if (out[label]["strong"], out[label]["weak"]) != (strong, weak):
                        out[label]["consistent"] = False
                    continue
                out[label] = self.pair_baseline(strong, weak)
        return out

    def pair_baseline(self, strong: str, weak: str) -> dict[str, Any]:
        qs = self.single_run(strong).quality
        qw = self.single_run(weak).quality
        q_s, q_w = float(qs.mean()), float(qw.mean())
        oracle = oracle_pair_curve(qs, qw)
        random = random_pair_curve(q_s, q_w)
        return {
            "strong": strong,
            "weak": weak,
            "consistent": True,
            "q_strong": q_s,
            "q_weak": q_w,
            "cost_strong_per_1k": float(self.single_run(strong).cost.mean()) * PER_1K,
            "cost_weak_per_1k": float(self.single_run(weak).cost.mean()) * PER_1K,
            "random": _pair_metrics(random, q_w, q_s),
            "oracle": _pair_metrics(oracle, q_w, q_s),
        }

    def router_summary(
        self, router: str, results: list[RouterResult], best: Point
    ) -> dict[str, Any]:
        families: dict[str, Any] = {}
        for name in results[0].runs:
            if name.startswith("threshold"):
                families[name] = self.threshold_summary(router, name, results)
            else:
                families[name] = self.family_summary(router, name, results, best)
        return {
            "frontier": self.frontier(router, best),
            "scorer_version": results[0].scorer_version,
            "train_seconds": sum(r.seconds.get("train", 0.0) for r in results),
            "replay_seconds": sum(r.seconds.get("replay", 0.0) for r in results),
            "families": families,
        }

    def pooled_points(self, router: str, name: str, results: list[RouterResult]) -> list[Point]:
        points = []
        for k in range(len(results[0].runs[name])):
            run = _concat([r.runs[name][k] for r in results])
            value = float(np.mean([r.knobs[name][k].value for r in results]))
            points.append(
                Point(
                    f"{router}/{name} #{k}",
                    float(run.cost.mean()) * PER_1K,
                    float(run.quality.mean()),
                    knob=value,
                )
            )
        return points

    def family_summary(
        self, router: str, name: str, results: list[RouterResult], best: Point
    ) -> dict[str, Any]:
        points = self.pooled_points(router, name, results)
        failed = [int(sum(r.runs[name][k].failed for r in results)) for k in range(len(points))]
        out: dict[str, Any] = {
            "points": [p.as_dict() | {"failed": f} for p, f in zip(points, failed, strict=True)],
            "aiq": aiq(points, self.lo, self.hi),
            "aiq_to_best_single": aiq(points, self.lo, best.cost_per_1k),
            "per_split_aiq": _mean_std([self.split_aiq(r, name) for r in results]),
        }
        out["aiq_vs_oracle"] = out["aiq"] / self.oracle_aiq if self.oracle_aiq else None
        reach = cost_at_quality(points, best.quality)
        out["curve_cost_at_best_quality_per_1k"] = reach
        out["curve_cost_share_of_best"] = reach / best.cost_per_1k if reach is not None else None
        if name in SELECTED:
            out["selected"] = self.selected_summary(name, results)
        return out

    def split_aiq(self, result: RouterResult, name: str) -> float:
        singles = [self.single_run(m, result.split).point(m) for m in self.data.models]
        lo = min(p.cost_per_1k for p in singles)
        hi = max(p.cost_per_1k for p in singles)
        return aiq([run.point() for run in result.runs[name]], lo, hi)

    def selected_summary(self, name: str, results: list[RouterResult]) -> dict[str, Any]:
        """The operating point chosen on the training side, scored on the test prompts,
        against the training side's best single model on the same prompts."""
        chosen = _concat([r.runs[name][r.selected[name]] for r in results])
        best_runs = [
            self.single_run(self.tasks[(r.split, r.router)].best_model, r.split) for r in results
        ]
        best = _concat(best_runs)
        q, c = float(chosen.quality.mean()), float(chosen.cost.mean()) * PER_1K
        bq, bc = float(best.quality.mean()), float(best.cost.mean()) * PER_1K
        per_split = [
            (
                float(r.runs[name][r.selected[name]].quality.mean()),
                float(r.runs[name][r.selected[name]].cost.mean()) * PER_1K,
                float(b.quality.mean()),
                float(b.cost.mean()) * PER_1K,
            )
            for r, b in zip(results, best_runs, strict=True)
        ]
        quality_gap = paired_interval(
            Curve.of([chosen]), Curve.of([best]), _mean_quality, self.samples
        )
        return {
            "knobs": [r.knobs[name][r.selected[name]].value for r in results],
            "engine_agreement": _mean_std([r.engine_agreement.get(name) for r in results]),
            "quality_minus_best_interval": quality_gap,
            "quality": q,
            "cost_per_1k": c,
            "best_single": sorted({self.tasks[(r.split, r.router)].best_model for r in results}),
            "best_single_quality": bq,
            "best_single_cost_per_1k": bc,
            "quality_minus_best": q - bq,
            "cost_share_of_best": c / bc if bc else None,
            # Matching the best single model: its quality is inside the interval or below.
            "meets_target": bool(not quality_gap["worse"] and bc and c / bc <= COST_SHARE_TARGET),
            "per_split_quality_minus_best": _mean_std([p[0] - p[2] for p in per_split]),
            "per_split_cost_share_of_best": _mean_std(
                [p[1] / p[3] if p[3] else None for p in per_split]
            ),
            "failed": chosen.failed,
        }

    def threshold_summary(
        self, router: str, name: str, results: list[RouterResult]
    ) -> dict[str, Any]:
        tasks = [self.tasks[(r.split, r.router)] for r in results]
        pairs = {next((s, w) for label, s, w in t.pairs if label == name) for t in tasks}
        per_split = [self.split_pair(r, name) for r in results]
        out: dict[str, Any] = {
            "per_split_apgr": _mean_std([p["apgr"] for p in per_split]),
            "per_split_cpt50": _mean_std([p["cpt"]["50"] for p in per_split]),
        }
        if len(pairs) != 1:
            out["note"] = "the pair differs between splits: only per-split figures are given"
            return out
        strong, weak = next(iter(pairs))
        col = self.data.models.index(strong)
        runs = [
            _concat([r.runs[name][k] for r in results]) for k in range(len(results[0].runs[name]))
        ]
        q_s = float(self.single_run(strong).quality.mean())
        q_w = float(self.single_run(weak).quality.mean())
        curve = PairCurve(
            np.array([run.share(col) for run in runs]),
            np.array([run.quality.mean() for run in runs]),
        )
        points = self.pooled_points(router, name, results)
        out |= {
            "strong": strong,
            "weak": weak,
            "points": [
                p.as_dict() | {"strong_share": float(s)}
                for p, s in zip(points, curve.strong_share, strict=True)
            ],
            **_pair_metrics(curve, q_w, q_s),
        }
        return out

    def split_pair(self, result: RouterResult, name: str) -> dict[str, Any]:
        task = self.tasks[(result.split, result.router)]
        _, strong, weak = next(p for p in task.pairs if p[0] == name)
        q_s = float(self.single_run(strong, result.split).quality.mean())
        q_w = float(self.single_run(weak, result.split).quality.mean())
        col = self.data.models.index(strong)
        runs = result.runs[name]
        curve = PairCurve(
            np.array([r.share(col) for r in runs]), np.array([r.quality.mean() for r in runs])
        )
        return _pair_metrics(curve, q_w, q_s)


def _mean_quality(curve: Curve, weights: npt.NDArray[np.float64]) -> float:
    return float(curve.quality[0] @ weights / weights.sum())


def _pair_metrics(curve: PairCurve, q_weak: float, q_strong: float) -> dict[str, Any]:
    if q_strong == q_weak:
        return {"apgr": None, "cpt": {f"{round(x * 100)}": None for x in CPT_LEVELS}}
    return {
        "apgr": apgr(curve, q_weak, q_strong),
        "cpt": {f"{round(x * 100)}": cpt(curve, q_weak, q_strong, x) for x in CPT_LEVELS},
    }


def summarise(runs: PlanRuns) -> dict[str, Any]:
    return Summariser(runs).summary()
