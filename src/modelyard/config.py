"""The YAML configuration: strict models, loaded and cross-checked at start-up.

Every problem fails `load()` with one `ConfigError` that names the file, the path
inside it and what is wrong, e.g.::

    stack.yaml: aliases.cheap: refers to model 'gpt-9', which is not declared
    (declared: gpt-5-mini, claude-haiku-4-5)

Secrets never live here: a deployment names the *environment variable* that
holds its key (`api_key_env`), and the loader refuses anything that looks like a
key pasted into the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from modelyard.errors import ConfigError
from modelyard.types import Capability, DataClass

_KEY_LIKE = re.compile(r"^(sk-|sk_|xai-|gsk_|AIza)[A-Za-z0-9_\-]{12,}")


def _to_price(value: Any) -> Decimal:
    """Prices are exact decimals; YAML floats are read through their text form."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"a price must be a number of dollars per million tokens, got {value!r}")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not price.is_finite() or price < 0:
        raise ValueError(f"a price must be a finite, non-negative number, got {value!r}")
    return price


Price = Annotated[Decimal, BeforeValidator(_to_price)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeploymentConfig(_Strict):
    """Where a model is served."""

    adapter: str
    base_url: str
    # One variable, or several tried in order (Gemini: GEMINI_API_KEY, GOOGLE_API_KEY).
    api_key_env: str | list[str] | None = None
    region: str | None = None
    private: bool = False
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=600.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    price_provider: str | None = None

    def key_names(self) -> list[str]:
        """The environment variables that may hold the key, in the order tried."""
        if self.api_key_env is None:
            return []
        return [self.api_key_env] if isinstance(self.api_key_env, str) else self.api_key_env

    def key_from(self, env: Mapping[str, str]) -> str | None:
        """The key: the first of `key_names()` set to a non-empty value, else None."""
        return next((env[n] for n in self.key_names() if env.get(n)), None)


class PriceConfig(_Strict):
    input: Price
    output: Price
    cached_input: Price | None = None


class LatencyConfig(_Strict):
    ttft_ms: float = Field(default=800.0, ge=0)
    output_tokens_per_s: float = Field(default=60.0, gt=0)


class QualityConfig(_Strict):
    default: float = Field(default=0.5, ge=0, le=1)
    tasks: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)


class EmbeddingConfig(_Strict):
    """An embeddings model's output (see `catalog.cards.EmbeddingSpec`)."""

    dimensions: int = Field(gt=0)
    shortenable: bool = False
    token_input: bool = False


# An embeddings model writes no output tokens: its card needs no output limit.
_NO_OUTPUT = 1


class ModelConfig(_Strict):
    """A model card as written in YAML; the key of the `models` mapping is its id.

    An embeddings model has an `embeddings:` block; its capabilities default to
    `[embeddings]`, `max_output_tokens` is not needed, and `context_window` is the
    most tokens one input may have."""

    deployment: str
    upstream: str | None = None
    family: str = "openai"
    capabilities: list[Capability] = Field(default_factory=lambda: [Capability.TEXT])
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    prices: PriceConfig | None = None
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    data_classes: list[DataClass] | None = None
    # Serves only requests that declare this task (a specialist classifier).
    task: str | None = None
    embeddings: EmbeddingConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _embedding_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("embeddings") is not None:
            data = {"capabilities": [Capability.EMBEDDINGS], **data}
            data.setdefault("max_output_tokens", _NO_OUTPUT)
        return data

    @model_validator(mode="after")
    def _embeddings_only(self) -> ModelConfig:
        """An embeddings model serves `/v1/embeddings` and nothing else, so it can
        never be routed a chat request, and a chat model never an embeddings one."""
        says = Capability.EMBEDDINGS in self.capabilities
        if says and self.embeddings is None:
            raise ValueError("an embeddings model needs an embeddings block: {dimensions: N}")
        if self.embeddings is not None and set(self.capabilities) != {Capability.EMBEDDINGS}:
            raise ValueError(
                "an embeddings model's only capability is 'embeddings' "
                f"(got {', '.join(c.value for c in self.capabilities)})"
            )
        return self


class PolicyConfig(BaseModel):
    """`type` picks a registered policy; the other keys are that policy's settings,
    validated strictly by the policy's own settings model at load."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str


class BreakerConfig(_Strict):
    """Per-deployment circuit breaker (see `modelyard.health`)."""

    failure_threshold: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1)


class ResilienceConfig(_Strict):
    """Attempts, timeouts and breakers: how hard the executor tries before giving up."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    request_timeout_s: float = Field(default=300.0, gt=0)
    attempt_timeout_s: float = Field(default=120.0, gt=0)
    first_token_timeout_s: float = Field(default=30.0, gt=0)
    retry_wait_max_s: float = Field(default=2.0, ge=0)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)


class ShadowPromotion(_Strict):
    """Promote a shadow specialist automatically once it agreed with the served
    answer on at least `agreement` of the last `last` requests it shadowed."""

    agreement: float = Field(gt=0, le=1)
    last: int = Field(default=200, ge=1)


class SpecialistConfig(_Strict):
    """A trained specialist to serve as `specialist/<name>` (see `modelyard.specialists`).

    `artifact` defaults to `$MODELYARD_HOME/specialists/<name>`; `task` and
    `min_confidence` default to what the artifact's manifest says."""

    artifact: str | None = None
    task: str | None = None
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    # The out-of-scope score at or above which a request escalates (default: the
    # artifact's; 1 switches the check off).
    oos_threshold: float | None = Field(default=None, ge=0, le=1)
    cost_per_call_usd: Price = Decimal(0)
    # `shadow`: the normal route serves; the specialist answers too, in the
    # background, unbilled to the caller, and the ledger tracks its agreement until
    # `modelyard specialist promote` (or `promote_at`) switches it to serving.
    mode: Literal["serve", "shadow"] = "serve"
    promote_at: ShadowPromotion | None = None


class ScorerConfig(_Strict):
    """How candidates are scored. `priors` (default): the cards' quality priors.
    `learned`: a predictor trained with `modelyard router train`, loaded once at
    start-up from `artifact` (a directory; relative paths are relative to this file).
    `models` maps card ids to the artifact's model names where they differ; a card
    the artifact does not know keeps its prior quality."""

    type: str = "priors"
    artifact: str | None = None
    models: dict[str, str] = Field(default_factory=dict)


# Enough to keep a gateway core busy (about 0.3 s of queue at 800 req/s), few enough
# that a burst is refused at once rather than served seconds late.
DEFAULT_MAX_IN_FLIGHT: Final = 256


class ServerConfig(_Strict):
    """Where the gateway listens, and its front door (issue 12): the body-size limit,
    the deadline for a request's headers, the hosts it answers to (default: the
    loopback names when bound to loopback, any otherwise; `*` for any), and whether
    `/docs` and `/openapi.json` are served. `max_in_flight`: chat requests in flight
    per process past which the next is shed with a 503 and `Retry-After:
    shed_retry_after_s` instead of queueing (0: never shed)."""

    host: str = "127.0.0.1"
    port: int = Field(default=4000, gt=0, lt=65536)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    header_timeout_s: float = Field(default=10.0, gt=0)
    allowed_hosts: list[str] | None = None
    docs: bool = False
    max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=0)
    shed_retry_after_s: float = Field(default=1.0, gt=0, le=3600)


class BudgetsConfig(_Strict):
    """Budget enforcement (see `modelyard.budgets`). `reservation_ttl_s`: how long a
    reservation outlives a replica that died mid-call (longer than any request);
    `on_redis_down`: `closed` (503) or `local` (per-replica limits, a warning);
    `MODELYARD_REDIS_DOWN` overrides it. The Redis URL itself comes only from
    `MODELYARD_REDIS_URL` (it may hold a password)."""

    reservation_ttl_s: float = Field(default=360.0, gt=0)
    refresh_s: float = Field(default=5.0, ge=0)
    on_redis_down: Literal["closed", "local"] = "closed"
    redis_prefix: str = Field(default="modelyard:", pattern=r"^[A-Za-z0-9:_.-]{1,64}$")


class CaptureConfig(_Strict):
    """Which tasks' prompts and answers the ledger keeps (for distilling specialists).
    Opt-in, because prompts may be sensitive; `"*"` captures every task."""

    tasks: list[str] = Field(default_factory=list)


class CacheConfig(_Strict):
    """The response cache (see `modelyard.cache`): off unless `enabled`, because a
    cached answer is a repeat of an earlier one. `backend`: `auto` is Redis when
    `MODELYARD_REDIS_URL` is set (shared by every replica), else in process;
    `max_entries` bounds the in-process LRU. `sampled`: also cache requests that
    sample (temperature above 0, or unset: the provider's default samples).
    `max_data_class`: the most sensitive data class whose answers are stored."""

    enabled: bool = False
    backend: Literal["auto", "memory", "redis"] = "auto"
    ttl_s: float = Field(default=3600.0, gt=0, le=30 * 86400)
    max_entries: int = Field(default=10_000, ge=1)
    max_entry_bytes: int = Field(default=256 * 1024, ge=1024)
    sampled: bool = False
    max_data_class: DataClass = DataClass.INTERNAL


class Config(_Strict):
    """A whole modelyard configuration."""

    deployments: dict[str, DeploymentConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    policies: dict[str, PolicyConfig] = Field(default_factory=dict)
    default_policy: str = "auto"
    ledger_url: str | None = None
    server: ServerConfig = Field(default_factory=ServerConfig)
    resilience: ResilienceConfig = Field(default_factory=ResilienceConfig)
    specialists: dict[str, SpecialistConfig] = Field(default_factory=dict)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse(data: Any, source: str) -> Config:
    """Validate already-parsed YAML data; `source` names the file in errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_format_loc(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"{source}: {problems}") from None
    cross_check(config, source)
    return config


def load(path: str | Path) -> Config:
    """Read, validate and cross-check the YAML file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse(data, str(path))


def cross_check(config: Config, source: str) -> None:
    """Resolve every reference; the first dangling one raises."""
    from modelyard.plugins import POLICIES, adapter_names, load, validate_policy_settings

    models = sorted(config.models)
    for name, dep in config.deployments.items():
        if dep.adapter not in adapter_names():
            raise ConfigError(
                f"{source}: deployments.{name}.adapter: unknown adapter '{dep.adapter}' "
                f"(known: {', '.join(sorted(adapter_names()))})"
            )
        for header, value in dep.headers.items():
            if _KEY_LIKE.match(value) or header.lower() in ("authorization", "x-api-key"):
                raise ConfigError(
                    f"{source}: deployments.{name}.headers.{header}: secrets do not belong in "
                    "config; name the environment variable in api_key_env instead"
                )
    for model_id, card in config.models.items():
        if card.deployment not in config.deployments:
            raise ConfigError(
                f"{source}: models.{model_id}.deployment: refers to deployment "
                f"'{card.deployment}', which is not declared "
                f"(declared: {', '.join(sorted(config.deployments)) or 'none'})"
            )
    for alias, target in config.aliases.items():
        if alias in config.models:
            raise ConfigError(f"{source}: aliases.{alias}: shadows a model with the same id")
        if target not in config.models:
            raise ConfigError(
                f"{source}: aliases.{alias}: refers to model '{target}', which is not declared "
                f"(declared: {', '.join(models) or 'none'})"
            )
    for name, policy in config.policies.items():
        settings = policy.model_extra or {}
        validate_policy_settings(policy.type, settings, f"{source}: policies.{name}")
        # A policy that names models in its own shapes (a cascade's tiers) checks them.
        check_references = getattr(load(POLICIES, policy.type), "check_references", None)
        if check_references is not None:
            check_references(name, settings, config, f"{source}: policies.{name}")
        named = [(k, settings.get(k)) for k in ("model", "strong", "weak")] + [
            (f"fallback.{i}", m) for i, m in enumerate(settings.get("fallback") or [])
        ]
        for where, model in named:
            if isinstance(model, str) and model not in config.models | config.aliases:
                raise ConfigError(
                    f"{source}: policies.{name}.{where}: refers to model '{model}', which is not "
                    f"declared (declared: {', '.join(models) or 'none'})"
                )
    _check_reachable(config, source)
    _check_embedding_adapters(config, source)
    _check_scorer(config.scorer, models, source)
    if config.default_policy not in config.policies:
        raise ConfigError(
            f"{source}: default_policy: '{config.default_policy}' is not a declared policy "
            f"(declared: {', '.join(sorted(config.policies)) or 'none'})"
        )


def _check_reachable(config: Config, source: str) -> None:
    """Every policy must be reachable by `model`: `auto` always means the default
    policy, so a policy named `auto` that is not the default could never run; and a
    policy named like a model or alias would hide it (policies are resolved first)."""
    auto = config.policies.get("auto")
    if auto is not None and config.default_policy != "auto":
        raise ConfigError(
            f"{source}: policies.auto: can never be reached: model 'auto' always means the "
            f"default policy ('{config.default_policy}'); rename this policy or set "
            "default_policy: auto"
        )
    for name in config.policies:
        if name in config.models or name in config.aliases:
            kind = "model" if name in config.models else "alias"
            raise ConfigError(
                f"{source}: policies.{name}: has the name of a declared {kind}, which could "
                "then never be asked for by name; rename the policy"
            )


def _check_embedding_adapters(config: Config, source: str) -> None:
    """An embeddings model must sit on a deployment whose adapter can embed (has an
    `embed` method): found at start-up, not on the first request."""
    from modelyard.plugins import ADAPTERS, load

    for model_id, card in config.models.items():
        if card.embeddings is None:
            continue
        adapter = config.deployments[card.deployment].adapter
        if not hasattr(load(ADAPTERS, adapter), "embed"):
            raise ConfigError(
                f"{source}: models.{model_id}.deployment: adapter '{adapter}' of deployment "
                f"'{card.deployment}' does not serve embeddings"
            )


def artifact_path(artifact: str, source: str) -> Path:
    """A relative artifact path is relative to the config file that names it."""
    path = Path(artifact).expanduser()
    if path.is_absolute():
        return path
    config_file = Path(source)
    return (config_file.parent if config_file.is_file() else Path.cwd()) / path


def _check_scorer(scorer: ScorerConfig, models: list[str], source: str) -> None:
    from modelyard.plugins import SCORERS, names

    where = f"{source}: scorer"
    if scorer.type not in names(SCORERS):
        known = ", ".join(sorted(names(SCORERS)))
        raise ConfigError(f"{where}.type: unknown scorer '{scorer.type}' (known: {known})")
    if scorer.type == "priors" and (scorer.artifact or scorer.models):
        raise ConfigError(f"{where}: 'artifact' and 'models' are settings of a learned scorer")
    if scorer.type == "learned":
        if scorer.artifact is None:
            raise ConfigError(f"{where}.artifact: a learned scorer needs the artifact directory")
        path = artifact_path(scorer.artifact, source)
        if not (path / "manifest.json").is_file():
            raise ConfigError(
                f"{where}.artifact: no router artifact at {path} (no manifest.json); "
                "train one with `modelyard router train`"
            )
    for card_id in scorer.models:
        if card_id not in models:
            raise ConfigError(
                f"{where}.models.{card_id}: not a declared model "
                f"(declared: {', '.join(models) or 'none'})"
            )
