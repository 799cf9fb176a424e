"""Printing an evaluation report to the terminal (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelyard.specialists.evaluate import EvalReport, OosReport, worst_classes


def print_report(console: Console, report: EvalReport, *, all_classes: bool = False) -> None:
    """Headline numbers, the coverage table for the escalation threshold, and the
    weakest classes (or every class)."""
    head = Table(title=f"specialist/{report.name} on {report.source} ({report.rows:,} rows)")
    head.add_column("measure")
    head.add_column("value", justify="right")
    head.add_row("accuracy", f"{report.accuracy:.4f}")
    head.add_row("macro-F1", f"{report.macro_f1:.4f}")
    head.add_row("ECE (calibrated)", f"{report.ece:.4f}")
    head.add_row("ECE (uncalibrated)", f"{report.ece_uncalibrated:.4f}")
    head.add_row(
        f"at threshold {report.threshold:.3f}",
        f"{report.coverage_at_threshold:.1%} answered, {report.accuracy_at_threshold:.2%} right",
    )
    console.print(head)
    cov = Table(title="coverage / accuracy (the rest escalates)")
    for col in ("coverage", "threshold", "accuracy of answered"):
        cov.add_column(col, justify="right")
    for wanted, point in report.at_coverage.items():
        cov.add_row(
            f">= {float(wanted):.0%} ({point.coverage:.1%})",
            f"{point.threshold:.3f}",
            f"{point.accuracy:.4f}",
        )
    console.print(cov)
    classes = (
        sorted(report.per_class, key=lambda c: c.label) if all_classes else worst_classes(report)
    )
    per = Table(title="per class" if all_classes else "weakest classes (--all-classes for all)")
    for col in ("label", "precision", "recall", "F1", "support"):
        per.add_column(col, justify="left" if col == "label" else "right")
    for c in classes:
        per.add_row(
            escape(c.label), f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support)
        )
    console.print(per)
    if report.oos is not None:
        print_oos(console, report.oos)


def print_oos(console: Console, oos: OosReport) -> None:
    """How the out-of-scope rows fared: escalated, and how well each score separates them."""
    table = Table(title=f"out of scope: {oos.rows:,} rows labelled '{escape(oos.label)}'")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("out-of-scope rows escalated (any reason)", f"{oos.oos_escalated:.1%}")
    if oos.oos_recall is not None and oos.oos_threshold is not None:
        table.add_row(
            f"  by the out-of-scope threshold {oos.oos_threshold:.3f}", f"{oos.oos_recall:.1%}"
        )
    else:
        table.add_row("  out-of-scope check", "none in this artifact (confidence only)")
    table.add_row("in-scope rows escalated (any reason)", f"{oos.inscope_escalated:.1%}")
    table.add_row("accuracy of what it answers", f"{oos.answered_accuracy:.4f}")
    for name, value in oos.auroc.items():
        table.add_row(f"AUROC, {name}", f"{value:.4f}")
    console.print(table)
