"""Putting trained specialists into a configuration: one deployment and one card each.

For each entry of the config's `specialists:` section (and, for the built-in stack,
each specialist found under `$MODELYARD_HOME/specialists/`), this adds

- a deployment `specialist-<name>` on the `specialist` adapter, private (the data
  never leaves the machine), whose URL names the artifact folder;
- a model card `specialist/<name>` that serves only requests of its task, whose
  quality prior for that task is its measured held-out accuracy, free per token
  (the box's cost per call is billed by the provider), and whose latency prior is a
  local call's.

Only `manifest.json` is read here (no NumPy), so the gateway starts without the
`learned` extra; the weights are loaded on the first request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from modelyard.config import (
    Config,
    DeploymentConfig,
    LatencyConfig,
    ModelConfig,
    PriceConfig,
    QualityConfig,
    SpecialistConfig,
)
from modelyard.errors import ConfigError
from modelyard.specialists.manifest import (
    MANIFEST,
    NAME,
    ArtifactError,
    read_manifest,
    specialists_home,
    version_dirs,
)
from modelyard.specialists.settings import SpecialistSettings
from modelyard.specialists.shadow import PROMOTED, Shadow
from modelyard.types import Capability

ADAPTER = "specialist"
MODEL_PREFIX = "specialist/"
DEPLOYMENT_PREFIX = "specialist-"
# A local classification is a few ms; without a measured figure, plan for this.
DEFAULT_LATENCY_MS = 10.0
# It reads the last user message (truncating at the encoder's limit escalates) and
# writes one label, so neither limit should keep it from a request of its task.
CONTEXT_WINDOW = 131_072
MAX_OUTPUT_TOKENS = 32_768
CAPABILITIES = [Capability.TEXT, Capability.STREAMING, Capability.JSON_MODE, Capability.JSON_SCHEMA]


def model_id(name: str) -> str:
    return f"{MODEL_PREFIX}{name}"


def discovered(home: Path) -> list[str]:
    """Names of the trained specialists under `home` (folders with a complete version)."""
    if not home.is_dir():
        return []
    return sorted(p.name for p in home.iterdir() if NAME.match(p.name) and version_dirs(p))


def with_specialists(
    config: Config,
    env: Mapping[str, str],
    *,
    discover: bool = False,
    source: str = "config",
) -> Config:
    """`config` plus a deployment and a card for each specialist. Idempotent: a
    specialist whose card is already there is left alone."""
    home = specialists_home(env)
    entries = dict(config.specialists)
    if discover:
        for name in discovered(home):
            entries.setdefault(name, SpecialistConfig())
    deployments = dict(config.deployments)
    models = dict(config.models)
    for name, spec in entries.items():
        where = f"{source}: specialists.{name}"
        dep_name = f"{DEPLOYMENT_PREFIX}{name}"
        if dep_name in deployments and (model_id(name) in models or shadowed(spec, home, name)):
            continue
        if not NAME.match(name):
            raise ConfigError(f"{where}: use lower-case letters, digits, '.', '_' or '-'")
        if model_id(name) in models or dep_name in deployments:
            raise ConfigError(f"{where}: '{model_id(name)}' or '{dep_name}' is already declared")
        path = artifact_path(spec, home, name)
        deployment, card = _entry(name, spec, path, where)
        deployments[dep_name] = deployment
        if not shadowed(spec, home, name):  # a shadow has no card: the router never picks it
            models[model_id(name)] = card
    if len(deployments) == len(config.deployments):
        return config
    return config.model_copy(update={"deployments": deployments, "models": models})


def artifact_path(spec: SpecialistConfig, home: Path, name: str) -> Path:
    return Path(spec.artifact).expanduser() if spec.artifact else home / name


def name_dir(path: Path) -> Path:
    """The folder holding a specialist's versions (and its `promoted.json`)."""
    return path.parent if (path / MANIFEST).is_file() else path


def shadowed(spec: SpecialistConfig, home: Path, name: str) -> bool:
    """In shadow mode and not promoted yet."""
    if spec.mode != "shadow":
        return False
    return not (name_dir(artifact_path(spec, home, name)) / PROMOTED).is_file()


def shadows(config: Config, env: Mapping[str, str]) -> dict[str, Shadow]:
    """The shadowed specialists of `config`, by task (one per task)."""
    home = specialists_home(env)
    found: dict[str, Shadow] = {}
    for name, spec in config.specialists.items():
        if not shadowed(spec, home, name):
            continue
        path = artifact_path(spec, home, name)
        try:
            manifest = read_manifest(path)
        except ArtifactError as exc:
            raise ConfigError(f"specialists.{name}.artifact: {exc.message}") from None
        task = spec.task or manifest.task
        if task in found:
            raise ConfigError(
                f"specialists.{name}: task '{task}' is already shadowed by {found[task].name}"
            )
        found[task] = Shadow(
            name=name,
            task=task,
            model_id=model_id(name),
            deployment=f"{DEPLOYMENT_PREFIX}{name}",
            upstream=name,
            labels=manifest.labels,
            name_dir=name_dir(path),
            promote_at=spec.promote_at,
        )
    return found


def quality_prior(accuracy: float | None, rows: float) -> float:
    """The card's quality prior: the lower end of the 95% Wilson interval of the
    held-out accuracy, not the accuracy itself. The held-out slice comes from the
    training distribution, so it flatters (Banking77: 0.974 held out, 0.952 on the
    test set); the bound is smaller the fewer rows it rests on."""
    if accuracy is None or rows <= 0:
        return 0.5
    z2, n = 1.96**2, rows
    centre = accuracy + z2 / (2 * n)
    spread = 1.96 * math.sqrt(accuracy * (1 - accuracy) / n + z2 / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z2 / n))


def _entry(
    name: str, spec: SpecialistConfig, path: Path, where: str
) -> tuple[DeploymentConfig, ModelConfig]:
    try:
        manifest = read_manifest(path)
    except ArtifactError as exc:
        raise ConfigError(f"{where}.artifact: {exc.message}") from None
    task = spec.task or manifest.task
    settings = SpecialistSettings(
        path, spec.min_confidence, spec.cost_per_call_usd, spec.oos_threshold
    )
    quality = quality_prior(manifest.heldout_accuracy, manifest.metrics.get("heldout_rows", 0))
    latency_ms = manifest.metrics.get("p50_ms", DEFAULT_LATENCY_MS)
    deployment = DeploymentConfig(adapter=ADAPTER, base_url=settings.to_url(), private=True)
    card = ModelConfig(
        deployment=f"{DEPLOYMENT_PREFIX}{name}",
        upstream=name,
        family="specialist",
        capabilities=CAPABILITIES,
        context_window=CONTEXT_WINDOW,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        prices=PriceConfig(input=Decimal(0), output=Decimal(0)),
        latency=LatencyConfig(ttft_ms=latency_ms, output_tokens_per_s=1e6),
        quality=QualityConfig(default=quality, tasks={task: quality}),
        task=task,
    )
    return deployment, card
