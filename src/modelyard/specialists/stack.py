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
    NAME,
    ArtifactError,
    read_manifest,
    specialists_home,
    version_dirs,
)
from modelyard.specialists.settings import SpecialistSettings
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
        if dep_name in deployments and model_id(name) in models:
            continue
        if not NAME.match(name):
            raise ConfigError(f"{where}: use lower-case letters, digits, '.', '_' or '-'")
        if model_id(name) in models or dep_name in deployments:
            raise ConfigError(f"{where}: '{model_id(name)}' or '{dep_name}' is already declared")
        path = Path(spec.artifact).expanduser() if spec.artifact else home / name
        deployments[dep_name], models[model_id(name)] = _entry(name, spec, path, where)
    if len(models) == len(config.models):
        return config
    return config.model_copy(update={"deployments": deployments, "models": models})


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
    accuracy = manifest.heldout_accuracy
    quality = accuracy if accuracy is not None else 0.5
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
