"""Config loading is strict: every problem names the file, the path and what is wrong."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard.catalog.defaults import default_config
from modelyard.config import load, parse
from modelyard.errors import ConfigError
from tests.stack import STACK


def _broken(mutate: Any) -> dict[str, Any]:
    data = copy.deepcopy(STACK)
    mutate(data)
    return data


def test_valid_stack_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(STACK))
    config = load(path)
    assert set(config.models) == {"small", "vision-mid", "frontier", "local-llm"}
    assert config.deployments["onprem"].private is True
    assert str(config.models["small"].prices.input) == "0.10"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda d: d["models"]["small"].update(colour="red"), ["models.small.colour", "Extra"]),
        (lambda d: d.update(surprise=1), ["surprise", "Extra"]),
        (
            lambda d: d["aliases"].update(fast="gpt-9"),
            ["aliases.fast", "'gpt-9'", "not declared", "small"],
        ),
        (
            lambda d: d["policies"].update(x={"type": "fixed", "model": "nope"}),
            ["policies.x.model", "'nope'"],
        ),
        (
            lambda d: d["models"]["small"].update(deployment="ghost"),
            ["models.small.deployment", "ghost"],
        ),
        (
            lambda d: d["policies"].update(
                f={"type": "fixed", "model": "cheap", "fallback": ["x"]}
            ),
            ["policies.f.fallback.0", "'x'"],
        ),
        (
            lambda d: d["models"]["small"]["prices"].update(input="cheap"),
            ["models.small.prices.input", "not a number"],
        ),
        (
            lambda d: d["models"]["small"]["prices"].update(output=-1),
            ["models.small.prices.output", "non-negative"],
        ),
        (
            lambda d: d["deployments"]["cheapco"].update(adapter="soap"),
            ["adapter", "unknown adapter 'soap'"],
        ),
        (lambda d: d.update(default_policy="nope"), ["default_policy", "'nope'"]),
        (
            lambda d: d["policies"].update(y={"type": "magic"}),
            ["policies.y.type", "unknown policy type"],
        ),
        (
            lambda d: d["policies"].update(z={"type": "utility", "lambda": 3}),
            ["policies.z.lambda", "Extra"],
        ),
        (
            lambda d: d["deployments"]["cheapco"].update(headers={"Authorization": "Bearer x"}),
            ["deployments.cheapco.headers.Authorization", "secrets do not belong"],
        ),
        (
            lambda d: d["models"]["small"].update(capabilities=["telepathy"]),
            ["models.small.capabilities.0"],
        ),
        # Issue 9: bench/routing.py timed a policy named `auto`, which `auto` never reaches.
        (
            lambda d: d.update(default_policy="best"),
            ["policies.auto", "can never be reached", "default policy ('best')"],
        ),
        (
            lambda d: d["policies"].update(small={"type": "best"}),
            ["policies.small", "name of a declared model"],
        ),
        (
            lambda d: d["policies"].update(cheap={"type": "best"}),
            ["policies.cheap", "name of a declared alias"],
        ),
    ],
)
def test_invalid_config_names_file_path_and_problem(mutate: Any, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse(_broken(mutate), "stack.yaml")
    message = info.value.message
    assert message.startswith("stack.yaml: ")
    for fragment in fragments:
        assert fragment in message


def test_a_policy_named_auto_is_fine_when_it_is_the_default() -> None:
    config = parse(_broken(lambda d: d["policies"].update(auto={"type": "best"})), "stack.yaml")
    assert config.default_policy == "auto"


def test_unreadable_and_non_yaml_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load(listy)


def test_builtin_default_stack_is_valid_and_adds_local_endpoints() -> None:
    config = default_config(["http://127.0.0.1:11434/v1=llama3.2,qwen2.5"])
    assert "openai/gpt-5-mini" in config.models
    assert "anthropic/claude-sonnet-4-5" in config.models
    assert config.models["local/llama3.2"].upstream == "llama3.2"
    assert config.deployments["local"].private is True
    assert config.deployments["local"].api_key_env is None


def test_bad_local_endpoint_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="URL=MODEL"):
        default_config(["127.0.0.1:11434"])


def test_example_stack_in_the_repository_loads() -> None:
    from pathlib import Path

    from modelyard.catalog.catalog import build_catalog
    from modelyard.engine import build_policies
    from modelyard.routing.cascade import CascadePolicy
    from modelyard.routing.policies import FixedPolicy

    path = Path(__file__).resolve().parents[1] / "examples" / "stack.yaml"
    config = load(path)
    catalog = build_catalog(config, {"OPENAI_API_KEY": "k"}, str(path))
    assert catalog.cards["openai/gpt-5-mini"].prices.source == "genai-prices"
    assert catalog.cards["ollama/llama3.2"].prices.source == "card"
    assert catalog.unavailable == {"anthropic": "ANTHROPIC_API_KEY is not set"}
    coder = build_policies(config)["coder"]
    assert isinstance(coder, FixedPolicy)
    assert coder.wanted() == ["anthropic/claude-sonnet-4-5", "openai/gpt-5-mini"]
    frugal = build_policies(config)["frugal"]
    assert isinstance(frugal, CascadePolicy)
    assert [getattr(t, "model", t) for t in frugal.settings.tiers] == [
        "ollama/llama3.2",
        "openai/gpt-5-mini",
        "anthropic/claude-sonnet-4-5",
    ]
