"""Records written by the real engine (not by hand) read back on the dashboard: a
fallback through the gateway, then its story, spend and savings pages."""

from __future__ import annotations

import random
import re
from decimal import Decimal
from pathlib import Path

import httpx

from modelyard.dashboard.format import money
from modelyard.engine import build_engine
from modelyard.errors import ProviderServerError
from modelyard.ledger import SqlLedger
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import create_app
from modelyard.types import ChatRequest, Completion
from tests.stack import ENV, echo_completion, stack_config


async def _down(request: ChatRequest, upstream: str) -> Completion:
    raise ProviderServerError("upstream said 500", provider="onprem", upstream_status=500)


async def test_a_real_fallback_is_on_the_dashboard(tmp_path: Path) -> None:
    ledger = SqlLedger(f"sqlite:///{tmp_path / 'ledger.db'}")
    await ledger.open()
    providers = {
        "cheapco": FunctionProvider(echo_completion()),
        "bigco": FunctionProvider(echo_completion()),
        "onprem": FunctionProvider(_down),
    }
    engine = build_engine(
        stack_config(), env=ENV, ledger=ledger, providers=providers, rng=random.Random(1)
    )
    transport = httpx.ASGITransport(app=create_app(engine))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            body = {"model": "cheapest", "messages": [{"role": "user", "content": "hi"}]}
            answer = await client.post("/v1/chat/completions", json=body)
            assert answer.status_code == 200
            # `cheapest` ranks the free local model first; it fails, `small` answers.
            assert answer.headers["x-modelyard-model"] == "small"
            request_id = answer.headers["x-request-id"]
            story = (await client.get(f"/ui/requests/{request_id}")).text
            savings = (await client.get("/ui/savings")).text
        records = await ledger.records(request_id=request_id)
    finally:
        await ledger.close()
    statuses = re.findall(r'<tr class="attempt" data-status="(\w+)"', story)
    assert statuses == [r.status for r in records]
    assert statuses[-1] == "ok"
    assert "error" in statuses
    assert "ProviderServerError" in story
    spent = sum((r.cost_usd for r in records), Decimal(0))
    assert money(spent) in story
    # The default reference is the decision's most expensive candidate, `frontier`
    # ($5 / $25 per million): the served answer's 100 + 20 tokens there, against
    # what every attempt really cost (the failed one billed nothing).
    counterfactual = (100 * Decimal(5) + 20 * Decimal(25)) / 10**6
    assert _figure(savings, "actual-usd") == money(spent)
    assert _figure(savings, "counterfactual-usd") == money(counterfactual)
    assert _figure(savings, "saved-usd") == money(counterfactual - spent)


def _figure(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert found is not None
    return found.group(1)
