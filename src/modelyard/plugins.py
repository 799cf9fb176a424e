"""Registries for adapters, policies, scorers, verifiers and extractors, filled
from entry points.

Built-ins are declared in modelyard's own `pyproject.toml` under the same groups a
plugin package would use (`modelyard.adapters`, `modelyard.policies`,
`modelyard.scorers`), so a third-party adapter is registered exactly like ours::

    [project.entry-points."modelyard.adapters"]
    gemini = "my_pkg.gemini:GeminiAdapter"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from modelyard.errors import ConfigError

ADAPTERS = "modelyard.adapters"
POLICIES = "modelyard.policies"
SCORERS = "modelyard.scorers"
VERIFIERS = "modelyard.verifiers"
EXTRACTORS = "modelyard.extractors"


@cache
def _group(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> frozenset[str]:
    """Registered names in `group`, without importing them."""
    return frozenset(_group(group))


def load(group: str, name: str) -> Any:
    """Import and return the object registered as `name` in `group`."""
    try:
        entry = _group(group)[name]
    except KeyError:
        known = ", ".join(sorted(_group(group))) or "none"
        raise ConfigError(f"no {group} entry named '{name}' (known: {known})") from None
    return entry.load()


def adapter_names() -> frozenset[str]:
    return names(ADAPTERS)


def validate_policy_settings(policy_type: str, settings: dict[str, Any], where: str) -> BaseModel:
    """Validate a policy's settings with the policy's own strict `Settings` model."""
    if policy_type not in names(POLICIES):
        known = ", ".join(sorted(names(POLICIES)))
        raise ConfigError(f"{where}.type: unknown policy type '{policy_type}' (known: {known})")
    settings_model: type[BaseModel] = load(POLICIES, policy_type).Settings
    try:
        return settings_model.model_validate(settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(problems) from None


def validate_verifier_settings(settings: Any, where: str) -> BaseModel:
    """Validate a cascade's `verifier:` mapping with that verifier's own `Settings`."""
    if not isinstance(settings, dict) or not isinstance(settings.get("type"), str):
        raise ValueError("a verifier is a mapping with a 'type' (e.g. {type: agreement})")
    kind = settings["type"]
    if kind not in names(VERIFIERS):
        known = ", ".join(sorted(names(VERIFIERS)))
        raise ValueError(f"unknown verifier '{kind}' (known: {known})")
    settings_model: type[BaseModel] = load(VERIFIERS, kind).Settings
    try:
        return settings_model.model_validate(settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ValueError(problems) from None
