"""Rendering a summary: rich tables, JSON of every number, PNG and self-contained HTML.

The HTML embeds the plots as inline SVG (written by matplotlib) and the tables as
plain HTML: no script, no CDN, it opens offline.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

Summary = dict[str, Any]


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80]


# --------------------------------------------------------------------------- tables


def baseline_rows(ev: Summary) -> list[list[str]]:
    """model/baseline, cost per 1k, quality, AIQ."""
    rows = [
        [p["label"], _f(p["cost_per_1k"], 4), _f(p["quality"]), ""]
        for p in sorted(ev["singles"], key=lambda p: p["cost_per_1k"])
    ]
    o = ev["oracle"]
    rows.append(
        [
            "oracle (best per prompt)",
            _f(o["cost_per_1k"], 4),
            _f(o["quality"]),
            _f(ev["aiq"]["oracle"]),
        ]
    )
    rows.append(["random mix (hull of singles)", "-", "-", _f(ev["aiq"]["random_mix"])])
    return rows


def router_rows(ev: Summary) -> list[list[str]]:
    """One row per router × N-model family: AIQ and the training-side operating point."""
    rows = []
    for router, r in ev["routers"].items():
        for fam, f in r["families"].items():
            if fam.startswith("threshold"):
                continue
            sel = f.get("selected", {})
            rows.append(
                [
                    f"{router} / {fam}",
                    _f(f["aiq"]),
                    _pct(f["aiq_vs_oracle"]),
                    f"{_f(f['per_split_aiq']['mean'])} ± {_f(f['per_split_aiq']['std'])}",
                    _f(sel.get("quality")),
                    _f(sel.get("cost_per_1k"), 4),
                    _f(sel.get("quality_minus_best"), 3),
                    _pct(sel.get("cost_share_of_best")),
                    _pct(f["curve_cost_share_of_best"]),
                ]
            )
    return rows


def pair_rows(ev: Summary) -> list[list[str]]:
    """Per pair: random, oracle and each router's APGR and CPT(20/50/80%)."""
    rows = []
    for label, pair in ev["pairs"].items():
        name = f"{pair['strong']} / {pair['weak']}"
        for who, m in (("random", pair["random"]), ("oracle", pair["oracle"])):
            rows.append(
                [name, who, _f(m["apgr"]), *(_pct(m["cpt"][k]) for k in ("20", "50", "80")), ""]
            )
        for router, r in ev["routers"].items():
            f = r["families"].get(label)
            if f is None or "apgr" not in f:
                continue
            spread = f"{_f(f['per_split_apgr']['mean'])} ± {_f(f['per_split_apgr']['std'])}"
            rows.append(
                [
                    name,
                    router,
                    _f(f["apgr"]),
                    *(_pct(f["cpt"][k]) for k in ("20", "50", "80")),
                    spread,
                ]
            )
    return rows


def _interval(i: dict[str, Any]) -> str:
    verdict = " better" if i["better"] else (" worse" if i["worse"] else "")
    return f"{i['estimate']:+.4f} [{i['low']:+.4f}, {i['high']:+.4f}]{verdict}"


def comparison_rows(ev: Summary) -> list[list[str]]:
    """Per router and baseline: ΔAIQ with its paired 95% bootstrap interval."""
    return [
        [router, base, _interval(c["aiq"]), _interval(c["aiq_to_best_single"])]
        for router, against in ev.get("comparisons", {}).items()
        for base, c in against.items()
    ]


def cascade_rows(ev: Summary) -> list[list[str]]:
    """The cascade family: AIQ, the operating point chosen on the training side (with
    its paired interval against the best single model), hops and IBC."""
    return [
        _cascade_row(family, c) for family, c in ev.get("cascades", {}).items() if "selected" in c
    ]


def _cascade_row(family: str, c: dict[str, Any]) -> list[str]:
    sel, hops, ibc = c["selected"], c["selected"]["hops"], c["selected"]["ibc"]
    gap = sel["quality_minus_best_interval"]
    return [
        family,
        _f(c["aiq"]),
        _f(c["aiq_to_best_single"]),
        f"{_f(sel['quality'])} / {_f(sel['cost_per_1k'], 4)}",
        f"{gap['estimate']:+.4f} [{gap['low']:+.4f}, {gap['high']:+.4f}]",
        _pct(sel["cost_share_of_best"]),
        " / ".join(_pct(x) for x in hops["share_by_step"]),
        f"{_pct(hops['escalation_rate'])} / {_pct(hops['wrong_caught'])}",
        "-" if ibc["delta_ibc_pct"] is None else f"{ibc['delta_ibc_pct']:+.0f}%",
    ]


CASCADE_COLS = (
    "family",
    "AIQ",
    "AIQ ≤ best $",
    "chosen q / $1k",
    "Δq vs best [95% CI]",
    "$ vs best",
    "answered at step 1/2/3",
    "escalated / wrong caught",
    "ΔIBC",
)
COMPARISON_COLS = ("router", "vs", "ΔAIQ [95% CI]", "ΔAIQ up to best single's $ [95% CI]")
BASELINE_COLS = ("model / baseline", "$/1k req", "quality", "AIQ")
ROUTER_COLS = (
    "router/policy",
    "AIQ",
    "÷oracle",
    "AIQ by split",
    "chosen q",
    "chosen $/1k",
    "Δq vs best",
    "$ vs best",
    "curve $ at best q",
)
PAIR_COLS = ("strong / weak", "router", "APGR", "CPT20", "CPT50", "CPT80", "APGR by split")


def print_summary(ev: Summary, console: Console, *, points: bool = False) -> None:
    console.rule(f"[bold]{ev['name']}[/bold]: {ev['test_prompts']} test prompts")
    best = ev["best_single"]
    console.print(
        f"best single model: {best['label']} (quality {best['quality']:.3f}, "
        f"${best['cost_per_1k']:.4f} per 1k); AIQ over ${ev['cost_range_per_1k']['lo']:.4f}"
        f"–${ev['cost_range_per_1k']['hi']:.4f} per 1k"
    )
    for title, cols, rows in (
        ("single models and baselines", BASELINE_COLS, baseline_rows(ev)),
        ("routers (operating point chosen on the training side)", ROUTER_COLS, router_rows(ev)),
        ("strong/weak pairs (RouteLLM metrics)", PAIR_COLS, pair_rows(ev)),
        ("cascades (chosen on the training side)", CASCADE_COLS, cascade_rows(ev)),
        ("paired bootstrap against the baselines", COMPARISON_COLS, comparison_rows(ev)),
    ):
        console.print(_table(title, cols, rows))
    if points:
        console.print(_table("every swept point", POINT_COLS, point_rows(ev)))


def _table(title: str, cols: Sequence[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(cols):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


POINT_COLS = ("router / policy", "#", "knob", "$ per 1k req", "quality", "strong share", "failed")


def point_rows(ev: Summary) -> list[list[str]]:
    rows = []
    for router, r in ev["routers"].items():
        for fam, f in r["families"].items():
            for i, p in enumerate(f.get("points", [])):
                rows.append(
                    [
                        f"{router} / {fam}",
                        str(i),
                        f"{p['knob']:.4g}",
                        _f(p["cost_per_1k"], 4),
                        _f(p["quality"]),
                        _pct(p.get("strong_share")),
                        str(p.get("failed", 0)),
                    ]
                )
    return rows


# --------------------------------------------------------------------------- plots


def figure(ev: Summary) -> Any:
    """Cost–quality frontier (log cost) and, for the first pair, PGR vs strong share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(16, 6), width_ratios=[3, 2])
    _frontier(ax, ev)
    _pair_plot(bx, ev)
    fig.suptitle(ev["name"])
    fig.tight_layout()
    return fig


def _frontier(ax: Any, ev: Summary) -> None:
    singles = ev["singles"]
    ax.scatter(
        [p["cost_per_1k"] for p in singles],
        [p["quality"] for p in singles],
        color="grey",
        zorder=3,
        label="single models",
    )
    for p in singles:
        ax.annotate(
            p["label"][:22],
            (p["cost_per_1k"], p["quality"]),
            fontsize=6,
            xytext=(3, 2),
            textcoords="offset points",
        )
    mix = ev["random_mix"]
    ax.plot(
        [p["cost_per_1k"] for p in mix],
        [p["quality"] for p in mix],
        "k--",
        lw=1,
        label="random mix (hull)",
    )
    frontier = sorted(ev["oracle_frontier"], key=lambda p: p["cost_per_1k"])
    ax.plot(
        [p["cost_per_1k"] for p in frontier],
        [p["quality"] for p in frontier],
        ":",
        color="black",
        lw=1,
        label="oracle (λ-swept)",
    )
    o = ev["oracle"]
    ax.scatter(
        [o["cost_per_1k"]],
        [o["quality"]],
        marker="*",
        s=150,
        color="gold",
        edgecolor="black",
        zorder=4,
        label="oracle",
    )
    for router, r in ev["routers"].items():
        for fam, f in r["families"].items():
            if fam.startswith("threshold") and fam != "threshold":
                continue
            pts = sorted(f.get("points", []), key=lambda p: p["cost_per_1k"])
            style = {"utility": "-o", "floor": "-s", "threshold": "-^"}.get(fam, "-x")
            ax.plot(
                [p["cost_per_1k"] for p in pts],
                [p["quality"] for p in pts],
                style,
                ms=3,
                lw=1,
                label=f"{router} / {fam}",
            )
    for family, c in ev.get("cascades", {}).items():
        pts = sorted(c.get("points", []), key=lambda p: p["cost_per_1k"])
        ax.plot(
            [p["cost_per_1k"] for p in pts],
            [p["quality"] for p in pts],
            "-D",
            ms=4,
            lw=2,
            label=family,
        )
        sel = c.get("selected")
        if sel:
            ax.scatter(
                [sel["cost_per_1k"]], [sel["quality"]], marker="D", s=60, color="red", zorder=5
            )
    ax.set_xscale("log")
    ax.set_xlabel("$ per 1,000 requests (log)")
    ax.set_ylabel("mean quality")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _pair_plot(ax: Any, ev: Summary) -> None:
    if "threshold" not in ev["pairs"]:
        ax.set_visible(False)
        return
    pair = ev["pairs"]["threshold"]
    qw, qs = pair["q_weak"], pair["q_strong"]
    ax.plot([0, 100], [0, 1], "k--", lw=1, label="random (APGR 0.50)")
    for router, r in ev["routers"].items():
        f = r["families"].get("threshold", {})
        pts = sorted(f.get("points", []), key=lambda p: p["strong_share"])
        if not pts or qs == qw:
            continue
        ax.plot(
            [100 * p["strong_share"] for p in pts],
            [(p["quality"] - qw) / (qs - qw) for p in pts],
            "-o",
            ms=3,
            label=f"{router} (APGR {_f(f.get('apgr'), 2)})",
        )
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.set_xlabel(f"% calls to {pair['strong']}")
    ax.set_ylabel(f"performance gap recovered (weak: {pair['weak']})")
    ax.set_title("strong/weak threshold routing", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def write_png(ev: Summary, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = figure(ev)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def svg(ev: Summary) -> str:
    import matplotlib.pyplot as plt

    fig = figure(ev)
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


# --------------------------------------------------------------------------- files


def _html_table(cols: Sequence[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}svg{max-width:100%;height:auto}"
)


def html_report(results: dict[str, Any]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>modelyard eval</title>"
        f"<style>{_CSS}</style></head><body><h1>modelyard eval</h1>"
        f"<pre>{html.escape(json.dumps(results['meta'], indent=1))}</pre>"
    ]
    for ev in results["evaluations"]:
        parts.append(f"<h2>{html.escape(ev['name'])}</h2>{svg(ev)}")
        parts.append(_html_table(BASELINE_COLS, baseline_rows(ev)))
        parts.append(_html_table(ROUTER_COLS, router_rows(ev)))
        parts.append(_html_table(PAIR_COLS, pair_rows(ev)))
        parts.append(_html_table(CASCADE_COLS, cascade_rows(ev)))
        parts.append(_html_table(COMPARISON_COLS, comparison_rows(ev)))
        parts.append(
            "<details><summary>every swept point</summary>"
            + _html_table(POINT_COLS, point_rows(ev))
            + "</details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_all(results: dict[str, Any], out: Path) -> list[Path]:
    """results.json, one PNG per evaluation, and report.html; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "report.html"]
    written[0].write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    for ev in results["evaluations"]:
        path = out / f"{slug(ev['name'])}.png"
        write_png(ev, path)
        written.append(path)
    written[1].write_text(html_report(results), encoding="utf-8")
    return written
