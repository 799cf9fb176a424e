"""The dashboard in a real browser: Playwright driving Chromium.

Chromium is Debian's `chromium` package (`/usr/bin/chromium`, or
`MODELYARD_CHROMIUM`), or Playwright's own download when that is installed.
Without either the tests skip, except under CI, where they must run.
With `MODELYARD_SCREENSHOTS=docs` each page is also saved as docs/dashboard-*.png.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from modelyard.dashboard.format import money
from tests.dashboard import data
from tests.dashboard.conftest import Site

playwright_api = pytest.importorskip("playwright.sync_api")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _chromium() -> str | None:
    """A Chromium executable, or None to use Playwright's own download."""
    for candidate in (os.environ.get("MODELYARD_CHROMIUM"), shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        try:
            launched = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        except Exception as exc:
            reason = f"no Chromium to drive ({exc.__class__.__name__}): apt-get install chromium"
            if _in_ci():
                pytest.fail(f"{reason} (CI is set, so the browser tests must run)")
            pytest.skip(reason)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    # Polling predicates are functions, not strings: the page's CSP forbids eval.
    page.problems = problems
    yield page
    context.close()
    assert problems == [], f"console errors: {problems}"


def _shot(page: Any, name: str) -> None:
    folder = os.environ.get("MODELYARD_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"dashboard-{name}.png"), full_page=True)


def _chart_points(page: Any) -> list[int]:
    """How many data points each drawn chart holds, once the charts exist."""
    page.wait_for_function("() => window.modelyardCharts && window.modelyardCharts.length > 0")
    points: list[int] = page.evaluate(
        "window.modelyardCharts.map(c => c.data.datasets.reduce((n, d) => n + d.data.length, 0))"
    )
    return points


def _canvas_has_ink(page: Any, selector: str) -> bool:
    """Whether the canvas has non-transparent pixels (the chart really drew)."""
    drawn: bool = page.eval_on_selector(
        selector,
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  for (let i = 3; i < d.length; i += 4) { if (d[i] !== 0) return true; }
                  return false; }""",
    )
    return drawn


def test_spend_page_draws_its_charts(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui")
    assert all(n > 0 for n in _chart_points(page))
    assert _canvas_has_ink(page, "canvas[data-chart=chart-spend]")
    assert page.text_content("#total-spend") == money(site.ledger.actual())
    _shot(page, "spend")


def test_savings_figure_matches_the_ledger(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/savings")
    counter, actual = site.ledger.counterfactual(), site.ledger.actual()
    assert page.text_content("#saved-usd") == money(counter - actual)
    assert page.text_content("#saved-share") == f"{(counter - actual) / counter * 100:.1f}%"
    assert _canvas_has_ink(page, "canvas[data-chart=chart-savings]")
    page.select_option("select[name=reference]", "vision-mid")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"reference=vision-mid"))
    expected = site.ledger.counterfactual("vision-mid") - actual
    assert page.text_content("#saved-usd") == money(expected)
    page.goto(site.url + "/ui/savings")
    _shot(page, "savings")


def test_filters_change_the_decision_table(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/decisions")
    every = page.eval_on_selector_all("tr.attempt", "rows => rows.map(r => r.dataset.status)")
    assert len(every) == 50
    assert {"error", "ok"} <= set(every)
    _shot(page, "decisions")
    # htmx swaps the table in place when the select changes (no page load).
    page.select_option("select[name=status]", "error")
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr.attempt')]"
        ".every(r => r.dataset.status === 'error')"
    )
    errors = page.eval_on_selector_all("tr.attempt", "rows => rows.map(r => r.dataset.status)")
    assert len(errors) == sum(r.status == "error" for r in site.ledger.records)
    assert "status=error" in page.url
    page.fill("input[name=model]", "frontier")
    page.press("input[name=model]", "Enter")
    # No fallback ever started on `frontier` (always last): nothing matches.
    page.wait_for_selector(".empty")
    assert page.eval_on_selector_all("tr.attempt", "rows => rows.length") == 0
    page.fill("input[name=model]", "small")
    page.press("input[name=model]", "Enter")
    page.wait_for_function(
        "() => document.querySelectorAll('tr.attempt').length > 0 && "
        "[...document.querySelectorAll('tr.attempt')].every(r => r.dataset.model === 'small')"
    )
    rows = page.eval_on_selector_all("tr.attempt", "rows => rows.length")
    assert rows == sum(r.status == "error" and r.model_id == "small" for r in site.ledger.records)


def test_decision_explorer_shows_a_fallbacks_attempts(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/decisions?status=error")
    page.click(f"a[href='/ui/requests/{data.FALLBACK_REQUEST}']")
    page.wait_for_selector("table.attempts")
    statuses = page.eval_on_selector_all(
        "table.attempts tr.attempt", "rows => rows.map(r => r.dataset.status)"
    )
    assert statuses == ["error", "ok"]
    rejected = page.text_content("table.rejected")
    assert "deployment onprem: no key" in (rejected or "")
    mine = [r for r in site.ledger.records if r.request_id == data.FALLBACK_REQUEST]
    total = sum((r.cost_usd for r in mine), Decimal(0))
    assert page.text_content("#request-cost") == money(total)
    _shot(page, "request")


def test_health_and_specialists_pages(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/health")
    assert page.eval_on_selector_all("#health tbody tr", "rows => rows.length") == 3
    _shot(page, "health")
    page.goto(site.url + "/ui/specialists")
    assert sum(_chart_points(page)) == data.CONFIDENCE_BINS
    assert _canvas_has_ink(page, "canvas[data-chart=chart-confidence]")
    _shot(page, "specialists")


def test_backwards_range_shows_the_message_without_errors(site: Site, page: Any) -> None:
    response = page.goto(site.url + "/ui?from=2025-03-05&to=2025-03-01")
    assert response.status == 400
    assert "backwards" in (page.text_content("[role=alert]") or "")
    # Chromium logs any 4xx document as "Failed to load resource"; that 400 is the point.
    page.problems[:] = [p for p in page.problems if "status of 400" not in p]
