"""Config `scorer:` → the engine the server and CLI build → decisions say which
artifact decided, with quality numbers from that artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

np = pytest.importorskip("numpy")

from modelyard.app_factory import load_stack  # noqa: E402
from modelyard.cli import app  # noqa: E402
from modelyard.config import load  # noqa: E402
from modelyard.embeddings import HashingEncoder, conversation_text  # noqa: E402
from modelyard.engine import build_engine  # noqa: E402
from modelyard.errors import ConfigError  # noqa: E402
from modelyard.learned.scorer import LearnedScorer  # noqa: E402
from modelyard.learned.train import train_scorer  # noqa: E402
from modelyard.ledger import InMemoryLedger  # noqa: E402
from modelyard.providers.function import FunctionProvider  # noqa: E402
from modelyard.server.app import create_app  # noqa: E402
from modelyard.types import ChatRequest  # noqa: E402
from tests.learned.synth import topic_outcomes  # noqa: E402
from tests.stack import ENV, STACK, echo_completion  # noqa: E402

POEM = "write a sonnet with rhyme about the moon"


@pytest.fixture(scope="module")
def trained() -> LearnedScorer:
    return train_scorer(
        "knn",
        topic_outcomes(n=60),
        encoder=HashingEncoder(64),
        folds=0,
        k=5,
        temperature=1.0,
        prior_weight=0.1,
    )


def write_config(tmp_path: Path, scorer: dict[str, Any]) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump({**STACK, "scorer": scorer}))
    return path


@pytest.fixture
def config_file(tmp_path: Path, trained: LearnedScorer) -> Path:
    trained.save(tmp_path / "router")
    # A relative artifact path is relative to the config file, not the working directory.
    return write_config(tmp_path, {"type": "learned", "artifact": "router"})


def test_engine_from_config_decides_with_the_artifact(
    config_file: Path, trained: LearnedScorer
) -> None:
    engine = build_engine(
        load(config_file), env=ENV, ledger=InMemoryLedger(), source=str(config_file)
    )
    request = ChatRequest.model_validate(
        {"model": "best", "messages": [{"role": "user", "content": POEM}]}
    )
    explained = engine.route(request).explain()
    assert explained["scorer"] == trained.version
    assert explained["scorer"].startswith("knn-")
    predicted = trained.predict([conversation_text([{"role": "user", "content": POEM}])])[0]
    quality = {c["model"]: c["quality"] for c in explained["candidates"]}
    for j, model in enumerate(trained.models):
        assert quality[model] == round(float(predicted[j]), 4)
    assert explained["candidates"][0]["model"] == "vision-mid"  # the poetry model


async def test_v1_route_shows_the_learned_scorer(config_file: Path, trained: LearnedScorer) -> None:
    stack = load_stack(str(config_file), (), ENV)
    providers = {n: FunctionProvider(echo_completion()) for n in ("cheapco", "bigco", "onprem")}
    engine = build_engine(
        stack.config,
        env=ENV,
        ledger=InMemoryLedger(),
        providers=providers,
        source=stack.source,
    )
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            "/v1/route", json={"messages": [{"role": "user", "content": POEM}]}
        )
    assert response.json()["decision"]["scorer"] == trained.version


def test_route_explain_cli_shows_the_learned_scorer(
    config_file: Path, trained: LearnedScorer
) -> None:
    result = CliRunner().invoke(
        app, ["route", "explain", POEM, "--config", str(config_file)], env=ENV
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["scorer"] == trained.version


def test_the_default_scorer_is_priors(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(STACK))
    engine = build_engine(load(path), env=ENV, ledger=InMemoryLedger(), source=str(path))
    assert engine.router.scorer.version == "priors-v1"


@pytest.mark.parametrize(
    ("scorer", "problem"),
    [
        ({"type": "learned", "artifact": "nowhere"}, r"scorer.artifact: no router artifact at"),
        ({"type": "learned"}, "scorer.artifact: a learned scorer needs"),
        ({"type": "priors", "artifact": "router"}, "settings of a learned scorer"),
        ({"type": "oracle"}, r"scorer.type: unknown scorer 'oracle' \(known: .*learned"),
        ({"type": "learned", "artifact": "router", "k": 5}, "scorer.k: Extra inputs"),
        (
            {"type": "learned", "artifact": "router", "models": {"gpt-9": "small"}},
            "scorer.models.gpt-9: not a declared model",
        ),
    ],
)
def test_bad_scorer_config_is_a_clear_error(
    tmp_path: Path, trained: LearnedScorer, scorer: dict[str, Any], problem: str
) -> None:
    trained.save(tmp_path / "router")
    with pytest.raises(ConfigError, match=problem):
        load(write_config(tmp_path, scorer))


def test_an_artifact_from_another_encoder_fails_at_start_up(
    tmp_path: Path, trained: LearnedScorer
) -> None:
    trained.save(tmp_path / "router")
    manifest_file = tmp_path / "router" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["encoder"]["id"] = "all-MiniLM-L6-v2/gt-0.0.1"  # what another machine had
    manifest_file.write_text(json.dumps(manifest))
    path = write_config(tmp_path, {"type": "learned", "artifact": "router"})
    with pytest.raises(ConfigError, match=r"scorer.artifact: .*trained on encoder"):
        build_engine(load(path), env=ENV, ledger=InMemoryLedger(), source=str(path))
