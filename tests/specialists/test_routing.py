"""Specialists in the catalog and on the request path: only their task's requests reach
them, they rank first for it, and a low-confidence answer escalates with both calls
in the ledger."""

from __future__ import annotations

import json
import random
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")

from modelyard import plugins
from modelyard.app_factory import load_stack
from modelyard.config import parse
from modelyard.engine import Engine, build_engine
from modelyard.errors import ConfigError, NoQualifiedModelError
from modelyard.ledger import InMemoryLedger
from modelyard.providers.base import DeploymentSettings
from modelyard.providers.function import FunctionProvider
from modelyard.specialists.manifest import read_manifest
from modelyard.specialists.provider import SpecialistProvider
from modelyard.specialists.stack import quality_prior, with_specialists
from modelyard.types import ChatRequest
from tests.stack import ENV, STACK, echo_completion, stack_config

MODEL = "specialist/intents"
DEPLOYMENT = "specialist-intents"


def ask(text: str, task: str | None = "intents", **extra: Any) -> ChatRequest:
    hints = {"task": task} if task else {}
    return ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": text}], "modelyard": hints, **extra}
    )


def engine_for(intents_dir: Path, ledger: InMemoryLedger, **spec: Any) -> Engine:
    config = stack_config(specialists={"intents": {"artifact": str(intents_dir), **spec}})
    expanded = with_specialists(config, ENV)
    dep = expanded.deployments[DEPLOYMENT]
    settings = DeploymentSettings(name=DEPLOYMENT, base_url=dep.base_url)
    providers = {
        name: FunctionProvider(echo_completion()) for name in ("cheapco", "bigco", "onprem")
    }
    providers[DEPLOYMENT] = plugins.load(plugins.ADAPTERS, "specialist")(settings, None)
    return build_engine(config, env=ENV, ledger=ledger, providers=providers, rng=random.Random(1))


def test_the_card_serves_only_its_task_with_a_cautious_accuracy_as_quality(
    intents_dir: Path,
) -> None:
    config = with_specialists(
        stack_config(specialists={"intents": {"artifact": str(intents_dir)}}), ENV
    )
    card = config.models[MODEL]
    manifest = read_manifest(intents_dir)
    accuracy = manifest.heldout_accuracy
    assert accuracy is not None
    # The lower end of the Wilson interval, not the (optimistic) held-out accuracy.
    prior = quality_prior(accuracy, manifest.metrics["heldout_rows"])
    assert prior < accuracy
    assert card.task == "intents"
    assert card.quality.tasks == {"intents": prior}
    assert config.deployments[DEPLOYMENT].adapter == "specialist"
    assert config.deployments[DEPLOYMENT].private
    assert with_specialists(config, ENV) is config  # idempotent


async def test_requests_of_its_task_go_to_it_first(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = engine_for(intents_dir, ledger, min_confidence=0.0, cost_per_call_usd="0.00001")
    decision, outcome = await engine.complete(ask("refund my invoice, I was overcharged"))
    assert decision.candidates[0].card.id == MODEL
    assert outcome.card.id == MODEL
    assert outcome.completion.content == "billing"
    [record] = await ledger.records()
    assert record.model_id == MODEL
    assert record.status == "ok"
    assert record.cost_usd == Decimal("0.00001")
    assert record.confidence == outcome.completion.confidence


async def test_a_streamed_answer_records_its_confidence_too(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = engine_for(intents_dir, ledger, min_confidence=0.0)
    live = await engine.stream(ask("refund my invoice, I was overcharged", stream=True))
    text = "".join([chunk.content or "" async for chunk in live])
    [record] = await ledger.records()
    assert (text, record.status, record.streamed) == ("billing", "ok", True)
    assert record.confidence is not None
    assert 0.0 < record.confidence <= 1.0


@pytest.mark.parametrize("task", [None, "code"])
def test_other_requests_never_reach_it(
    intents_dir: Path, ledger: InMemoryLedger, task: str | None
) -> None:
    engine = engine_for(intents_dir, ledger)
    decision = engine.route(ask("refund my invoice", task=task))
    assert MODEL not in [c.card.id for c in decision.candidates]
    reasons = {r.model_id: r.reason for r in decision.rejected}
    assert reasons[MODEL].startswith("serves only task 'intents'")
    if task is not None:  # an explicit, different task still rules it out
        asking_for_it = ask("refund my invoice", task=task, model=MODEL)
        with pytest.raises(NoQualifiedModelError, match="serves only task 'intents'"):
            engine.route(asking_for_it)


def test_naming_the_specialist_declares_its_task(intents_dir: Path, ledger: InMemoryLedger) -> None:
    engine = engine_for(intents_dir, ledger)
    decision = engine.route(ask("refund my invoice", task=None, model=MODEL))
    assert [c.card.id for c in decision.candidates] == [MODEL]
    assert decision.requirements.task == "intents"


async def test_low_confidence_escalates_and_both_calls_are_in_the_ledger(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = engine_for(intents_dir, ledger, min_confidence=0.9)
    decision, outcome = await engine.complete(ask("please help"))
    assert decision.candidates[0].card.id == MODEL
    assert outcome.card.id != MODEL
    first, second = await ledger.records()
    assert (first.model_id, first.status) == (MODEL, "escalated")
    assert first.confidence is not None
    assert first.confidence < 0.9
    assert (second.model_id, second.status) == (outcome.card.id, "ok")


async def test_with_nothing_to_escalate_to_its_own_answer_is_returned(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = engine_for(intents_dir, ledger, min_confidence=0.9)
    _, outcome = await engine.complete(ask("please help", model=MODEL))
    assert outcome.card.id == MODEL
    assert outcome.completion.content in ("billing", "shipping", "login")
    [record] = await ledger.records()
    assert record.status == "escalated"


async def test_streams_are_served_too(intents_dir: Path, ledger: InMemoryLedger) -> None:
    engine = engine_for(intents_dir, ledger, min_confidence=0.0)
    stream = await engine.stream(ask("my parcel is late", stream=True))
    text = "".join([c.content or "" async for c in stream])
    assert text == "shipping"
    assert stream.card.id == MODEL


def test_the_built_engine_uses_the_specialist_adapter(intents_dir: Path) -> None:
    config = stack_config(specialists={"intents": {"artifact": str(intents_dir)}})
    engine = build_engine(config, env=ENV, ledger=InMemoryLedger())
    assert isinstance(engine.executor.providers[DEPLOYMENT], SpecialistProvider)
    assert MODEL in engine.catalog.cards


def test_the_builtin_stack_discovers_trained_specialists(intents_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(intents_dir, tmp_path / "specialists" / "intents")
    env = {"MODELYARD_HOME": str(tmp_path)}
    stack = load_stack(None, (), env)
    assert stack.catalog.cards[MODEL].task == "intents"
    assert stack.catalog.is_available(stack.catalog.cards[MODEL])  # no key needed
    # A config file lists the specialists it serves; it does not pick them up on its own.
    path = tmp_path / "stack.yaml"
    path.write_text(json.dumps(STACK))
    assert MODEL not in load_stack(str(path), (), {**ENV, **env}).catalog.cards
    path.write_text(json.dumps({**STACK, "specialists": {"intents": {}}}))
    assert MODEL in load_stack(str(path), (), {**ENV, **env}).catalog.cards


def test_a_missing_artifact_is_a_config_error_naming_the_entry(tmp_path: Path) -> None:
    config = stack_config(specialists={"ghost": {"artifact": str(tmp_path / "ghost")}})
    with pytest.raises(
        ConfigError, match=r"test: specialists\.ghost\.artifact: .*no trained specialist"
    ):
        with_specialists(config, ENV, source="test")


def test_bad_specialist_settings_fail_at_load() -> None:
    with pytest.raises(ConfigError, match=r"specialists\.x\.min_confidence"):
        parse({**STACK, "specialists": {"x": {"min_confidence": 2}}}, "s.yaml")
    with pytest.raises(ConfigError, match=r"specialists\.x\.cost_per_call_usd"):
        parse({**STACK, "specialists": {"x": {"cost_per_call_usd": "-1"}}}, "s.yaml")
