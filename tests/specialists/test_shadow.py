"""Shadow mode: the normal route serves, the specialist answers in the background,
the ledger tracks agreement; status and promotion read it back."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")

from typer.testing import CliRunner

from modelyard import plugins
from modelyard.cli import app
from modelyard.engine import Engine, build_engine
from modelyard.ledger import InMemoryLedger, open_ledger
from modelyard.providers.base import DeploymentSettings
from modelyard.providers.function import FunctionProvider
from modelyard.specialists.shadow import PROMOTED, ShadowRunner, summarise
from modelyard.specialists.stack import with_specialists
from modelyard.types import ChatRequest, Completion, Usage
from tests.specialists.test_routing import DEPLOYMENT, MODEL, ask
from tests.stack import ENV, stack_config

runner = CliRunner()


def answering(label: str) -> FunctionProvider:
    async def complete(request: ChatRequest, upstream: str) -> Completion:
        return Completion("c-1", upstream, label, usage=Usage(input_tokens=100, output_tokens=2))

    return FunctionProvider(complete)


def shadow_engine(
    artifact: Path, ledger: Any, served_label: str = "billing", **spec: Any
) -> Engine:
    entry = {"artifact": str(artifact), "mode": "shadow", **spec}
    config = stack_config(specialists={"intents": entry})
    dep = with_specialists(config, ENV).deployments[DEPLOYMENT]
    providers = {name: answering(served_label) for name in ("cheapco", "bigco", "onprem")}
    settings = DeploymentSettings(name=DEPLOYMENT, base_url=dep.base_url)
    providers[DEPLOYMENT] = plugins.load(plugins.ADAPTERS, "specialist")(settings, None)
    return build_engine(config, env=ENV, ledger=ledger, providers=providers, rng=random.Random(1))


def copy_artifact(intents_dir: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "intents"
    shutil.copytree(intents_dir, target)
    return target


async def drain(engine: Engine) -> None:
    observer = engine.executor.observer
    assert isinstance(observer, ShadowRunner)
    await observer.drain()


async def test_the_normal_route_serves_and_the_shadow_answer_is_recorded_unbilled(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = shadow_engine(intents_dir, ledger)
    assert MODEL not in engine.catalog.cards  # the router can never pick a shadow
    decision, outcome = await engine.complete(ask("I was overcharged, refund the invoice"))
    assert outcome.card.id != MODEL
    assert MODEL not in [c.card.id for c in decision.candidates]
    await drain(engine)
    served, shadow = await ledger.records()
    assert served.status == "ok"
    assert (shadow.model_id, shadow.status, shadow.cost_usd) == (MODEL, "shadow", Decimal(0))
    assert shadow.request_id == served.request_id
    info = shadow.reasons["shadow"]
    assert info["label"] == "billing"
    assert info["served_label"] == "billing"
    assert info["agree"] is True
    assert info["escalate"] is None
    assert shadow.confidence is not None
    # The shadowed task is captured, so distill can retrain from the same traffic.
    assert len(await ledger.exchanges(task="intents")) == 1


async def test_disagreement_and_escalation_are_recorded(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = shadow_engine(intents_dir, ledger, served_label="shipping")
    await engine.complete(ask("I was overcharged, refund the invoice"))
    await engine.complete(ask("what is the weather forecast for tomorrow"))
    await drain(engine)
    shadows = [r for r in await ledger.records() if r.status == "shadow"]
    assert [r.reasons["shadow"]["agree"] for r in shadows] == [False, False]
    assert shadows[1].reasons["shadow"]["escalate"]["reason"] == "out_of_scope"
    summary = summarise(await ledger.records(), MODEL, 200)
    assert (summary.shadowed, summary.compared, summary.agreement) == (2, 2, 0.0)
    assert summary.coverage == 0.5


async def test_streamed_requests_are_shadowed_too(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = shadow_engine(intents_dir, ledger)
    stream = await engine.stream(ask("refund the invoice please", stream=True))
    assert "".join([c.content or "" async for c in stream]) == "billing"
    await drain(engine)
    assert [r.status for r in await ledger.records()] == ["ok", "shadow"]


async def _shadow_three(artifact: Path, url: str) -> None:
    ledger = open_ledger(url)
    await ledger.open()
    engine = shadow_engine(artifact, ledger)
    for text in ("refund the invoice", "overcharged on my bill", "payment receipt price"):
        await engine.complete(ask(text))
    await drain(engine)
    await ledger.close()


async def _served_by(artifact: Path) -> str:
    served = InMemoryLedger()
    await served.open()
    engine = shadow_engine(artifact, served)
    assert engine.executor.observer is None
    _, outcome = await engine.complete(ask("refund the invoice"))
    return outcome.card.id


def test_status_and_promote_read_the_ledger(intents_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    copy_artifact(intents_dir, home)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    asyncio.run(_shadow_three(home / "intents", url))
    status = runner.invoke(
        app, ["specialist", "status", "--name", "intents", "--database", url, "--dir", str(home)]
    )
    assert status.exit_code == 0, status.output
    out = " ".join(status.output.split())
    assert "agreement with the served answer" in out
    assert "100.0% of 3" in out
    promote = ["specialist", "promote", "--name", "intents", "--database", url]
    refused = runner.invoke(app, [*promote, "--dir", str(home), "--last", "10"])
    assert refused.exit_code == 2
    assert "fewer than --last 10" in " ".join(refused.output.split())
    assert not (home / "intents" / PROMOTED).exists()
    done = runner.invoke(app, [*promote, "--dir", str(home), "--last", "3"])
    assert done.exit_code == 0, done.output
    assert (home / "intents" / PROMOTED).is_file()
    # Promoted: the next start serves it.
    assert asyncio.run(_served_by(home / "intents")) == MODEL


async def test_automatic_promotion_after_the_last_n_agree(
    intents_dir: Path, tmp_path: Path, ledger: InMemoryLedger
) -> None:
    artifact = copy_artifact(intents_dir, tmp_path)
    engine = shadow_engine(artifact, ledger, promote_at={"agreement": 0.9, "last": 2})
    await engine.complete(ask("refund the invoice"))
    await drain(engine)
    assert not (artifact / PROMOTED).exists()
    await engine.complete(ask("overcharged on my bill"))
    await drain(engine)
    assert (artifact / PROMOTED).is_file()


def test_status_of_a_shadow_no_request_uses_says_why(intents_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    copy_artifact(intents_dir, home)
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = runner.invoke(
        app, ["specialist", "status", "--name", "intents", "--database", url, "--dir", str(home)]
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "has shadowed no request yet" in out
    assert '"task": "intents"' in out
    assert "Traceback" not in out
