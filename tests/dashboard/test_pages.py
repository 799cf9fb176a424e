"""The dashboard over HTTP: right figures, bad input answered with a message, access."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

import httpx
import pytest

from modelyard.dashboard.format import money
from tests.dashboard import data
from tests.dashboard.conftest import ADMIN_KEY, Site

PAGES = ("/ui", "/ui/savings", "/ui/decisions", "/ui/health", "/ui/specialists")


def figure(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert found, f"no #{element_id} on the page"
    return found.group(1)


def attempt_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="attempt" data-status="(\w+)"', html)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_its_security_headers(site: Site, path: str) -> None:
    response = httpx.get(site.url + path)
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]
    # Scripts only from the gateway itself: the dashboard works offline.
    assert set(re.findall(r'<script src="([^"]+)"', response.text)) == {
        "/ui/static/htmx.min.js",
        "/ui/static/chart.umd.min.js",
        "/ui/static/dashboard.js",
    }


def test_spend_totals_are_the_ledgers(site: Site) -> None:
    html = httpx.get(site.url + "/ui").text
    billed = [r for r in site.ledger.records if r.status != "shadow"]
    assert figure(html, "total-spend") == money(site.ledger.actual())
    assert figure(html, "total-calls") == f"{len(billed):,}"


@pytest.mark.parametrize("by", ["model", "key", "team", "task"])
def test_breakdown_by_each_dimension_sums_to_the_total(site: Site, by: str) -> None:
    html = httpx.get(site.url + f"/ui?by={by}").text
    table = html[html.index('id="breakdown"') :]
    costs = re.findall(r'<td class="num">\$([\d,.]+)</td></tr>', table)
    assert costs
    total = sum(Decimal(c.replace(",", "")) for c in costs)
    assert abs(total - site.ledger.actual()) <= Decimal("0.000001") * len(costs)


def test_savings_equal_the_ones_computed_from_the_rows(site: Site) -> None:
    html = httpx.get(site.url + "/ui/savings").text
    actual, counter = site.ledger.actual(), site.ledger.counterfactual()
    assert figure(html, "actual-usd") == money(actual)
    assert figure(html, "counterfactual-usd") == money(counter)
    assert figure(html, "saved-usd") == money(counter - actual)
    assert figure(html, "saved-share") == f"{(counter - actual) / counter * 100:.1f}%"


def test_savings_against_an_operator_picked_reference(site: Site) -> None:
    html = httpx.get(site.url + "/ui/savings?reference=vision-mid").text
    counter = site.ledger.counterfactual("vision-mid")
    assert figure(html, "counterfactual-usd") == money(counter)
    assert figure(html, "saved-usd") == money(counter - site.ledger.actual())


def test_unknown_reference_model_is_a_message(site: Site) -> None:
    response = httpx.get(site.url + "/ui/savings?reference=nope'--")
    assert response.status_code == 400
    assert "&#39;reference&#39; must be a catalog model" in response.text


def test_backwards_date_range_is_a_clear_message(site: Site) -> None:
    response = httpx.get(site.url + "/ui?from=2025-03-05&to=2025-03-01")
    assert response.status_code == 400
    assert "the date range is backwards" in response.text
    bad = httpx.get(site.url + "/ui/savings?from=yesterday")
    assert bad.status_code == 400
    assert "must be a date like 2025-03-01" in bad.text


def test_a_date_range_narrows_the_figures(site: Site) -> None:
    today = datetime.now(UTC).date()
    since = today - timedelta(days=1)
    html = httpx.get(site.url + f"/ui?from={since}&to={today}").text
    start = datetime.combine(since, datetime.min.time(), UTC)
    inside = [r for r in site.ledger.records if r.started_at >= start]
    assert figure(html, "total-calls") == f"{len(inside):,}"
    assert "Spend per hour" in html


@pytest.mark.parametrize("key", [k for k in data.KEYS if k is not None])
def test_key_filter_with_metacharacters_and_unicode_is_plain_text(site: Site, key: str) -> None:
    response = httpx.get(site.url + "/ui/decisions?key=" + quote(key))
    assert response.status_code == 200
    wanted = sorted(
        (r for r in site.ledger.records if r.key_id == key),
        key=lambda r: (r.started_at, r.id),
        reverse=True,
    )[:50]
    assert attempt_rows(response.text) == [r.status for r in wanted]
    # The table is still there: nothing was dropped.
    assert httpx.get(site.url + "/ui/decisions").status_code == 200


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=nope", "&#39;status&#39; must be one of"),
        ("model=" + "m" * 300, "longer than 200 characters"),
        ("model=%01x", "control characters"),
        ("before=garbage", "not a page cursor"),
        ("by=price", "&#39;by&#39; must be one of"),
    ],
)
def test_bad_filters_are_messages_not_errors(site: Site, query: str, message: str) -> None:
    path = "/ui" if query.startswith("by=") else "/ui/decisions"
    response = httpx.get(f"{site.url}{path}?{query}")
    assert response.status_code == 400
    assert message in response.text


def test_filters_and_keyset_pages_cover_each_attempt_once(site: Site) -> None:
    seen: list[str] = []
    url: str | None = "/ui/decisions?status=ok"
    while url:
        html = httpx.get(site.url + url.replace("&amp;", "&")).text
        assert set(attempt_rows(html)) <= {"ok"}
        seen += re.findall(r'href="/ui/requests/([^"]+)"', html)
        older = re.search(r'id="older" href="([^"]+)"', html)
        url = older.group(1) if older else None
    ok = [r for r in site.ledger.records if r.status == "ok"]
    assert sorted(seen) == sorted(r.request_id for r in ok)


def test_a_fallback_request_shows_every_attempt(site: Site) -> None:
    html = httpx.get(site.url + f"/ui/requests/{data.FALLBACK_REQUEST}").text
    assert attempt_rows(html) == ["error", "ok"]
    assert "ProviderUnavailableError" in html
    assert "deployment onprem: no key" in html  # the rejection reason
    mine = [r for r in site.ledger.records if r.request_id == data.FALLBACK_REQUEST]
    assert figure(html, "request-cost") == money(sum((r.cost_usd for r in mine), Decimal(0)))


def test_unknown_request_is_a_message(site: Site) -> None:
    response = httpx.get(site.url + "/ui/requests/" + quote("nope'; --ß"))
    assert response.status_code == 400
    assert "no request" in response.text


def test_specialist_coverage_counts_answered_and_escalated(site: Site) -> None:
    html = httpx.get(site.url + "/ui/specialists").text
    specialist = [r for r in site.ledger.records if r.confidence is not None]
    answered = sum(r.status == "ok" for r in specialist)
    escalated = sum(r.status == "escalated" for r in specialist)
    assert f'<td>intents</td><td class="num">{answered}</td><td class="num">{escalated}</td>' in (
        html
    )


def test_health_lists_each_deployment_with_its_breaker(site: Site) -> None:
    html = httpx.get(site.url + "/ui/health").text
    for name in ("cheapco", "bigco", "onprem"):
        assert f'data-deployment="{name}"' in html
    assert "closed" in html


@pytest.mark.parametrize("path", PAGES)
def test_empty_ledger_pages_say_so(empty_site: Site, path: str) -> None:
    response = httpx.get(empty_site.url + path)
    assert response.status_code == 200
    if path in ("/ui", "/ui/savings", "/ui/specialists"):
        assert 'class="empty">No ' in response.text


def test_locked_dashboard_needs_the_admin_key(locked_site: Site) -> None:
    url = locked_site.url
    anonymous = httpx.get(url + "/ui/savings")
    assert anonymous.status_code == 401
    assert 'name="key"' in anonymous.text
    assert httpx.get(url + "/ui", headers={"authorization": "Bearer wrong"}).status_code == 401
    bearer = httpx.get(url + "/ui", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert bearer.status_code == 200
    assert "total-spend" in bearer.text


def test_login_form_sets_an_httponly_cookie(locked_site: Site) -> None:
    with httpx.Client(base_url=locked_site.url) as client:
        wrong = client.post("/ui/login", data={"key": "nope", "next": "/ui/savings"})
        assert wrong.status_code == 401
        assert "not the admin key" in wrong.text
        ok = client.post("/ui/login", data={"key": ADMIN_KEY, "next": "//evil.example/"})
        assert ok.status_code == 303
        assert ok.headers["location"] == "/ui"
        cookie = ok.headers["set-cookie"].lower()
        for attribute in ("httponly", "samesite=strict", "path=/ui"):
            assert attribute in cookie
        assert ADMIN_KEY not in ok.headers["set-cookie"]
        assert client.get("/ui/decisions").status_code == 200
        client.post("/ui/logout")
        assert client.get("/ui/decisions").status_code == 401


def test_forged_cookie_is_refused(locked_site: Site) -> None:
    forged = {"modelyard_ui": "99999999999.deadbeef"}
    assert httpx.get(locked_site.url + "/ui", cookies=forged).status_code == 401


def test_dashboard_is_read_only(site: Site) -> None:
    assert httpx.post(site.url + "/ui/decisions").status_code == 405


async def test_an_in_memory_ledger_gets_a_message_not_an_error() -> None:
    from modelyard.app_factory import Stack
    from modelyard.ledger import InMemoryLedger
    from tests.stack import ENV, stack_config

    app = Stack(stack_config(), "test-stack.yaml", ENV).create_app(InMemoryLedger())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/ui/savings")
    assert response.status_code == 503
    assert "reads a SQL ledger" in response.text
