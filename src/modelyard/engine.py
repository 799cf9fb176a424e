"""The Engine: the one path every request takes, whatever front door it came in by.

    request → Router.plan() (pure) → Executor (provider I/O, fallback) → ledger

The HTTP server, the CLI and (later) the evaluation harness all build an Engine
with `build_engine()` and differ only in the edges they inject: providers, ledger,
clock, ids and rng.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import httpx

from modelyard import plugins
from modelyard.attempts import watch_network
from modelyard.budgets.fit import Allowance
from modelyard.budgets.gate import BudgetGate
from modelyard.catalog.catalog import Catalog, build_catalog
from modelyard.config import Config
from modelyard.errors import PermissionDeniedError
from modelyard.executor import CallContext, Executor, Limits, Outcome, utc_now
from modelyard.health import BreakerSettings, HealthState, InProcessHealth
from modelyard.keys import Principal
from modelyard.ledger.records import LedgerStore
from modelyard.live_stream import LiveStream
from modelyard.providers.base import ChatProvider, DeploymentSettings
from modelyard.routing.plan import Decision
from modelyard.routing.policies import FixedPolicy, Policy
from modelyard.routing.router import Router
from modelyard.routing.scorers import Scorer
from modelyard.routing.threshold import ThresholdPolicy
from modelyard.specialists.shadow import ShadowRunner
from modelyard.specialists.stack import shadows, with_specialists
from modelyard.types import ChatRequest


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Engine:
    """Routes and executes chat requests; every attempt lands in `ledger`."""

    catalog: Catalog
    router: Router
    executor: Executor
    ledger: LedgerStore
    rng: random.Random
    ids: Callable[[], str] = new_id
    # Issue 12: budgets and rate limits (None: no budgets, no keys).
    gate: BudgetGate | None = None

    def __post_init__(self) -> None:
        # A cascade's judge is a call like any other: planned by this router.
        self.executor.planner = self.route

    def route(self, request: ChatRequest, allowance: Allowance | None = None) -> Decision:
        """Dry run: the decision and its reasons, without calling any model.

        Plans against the current health snapshot, so open circuits and 429
        cool-downs show up as rejection reasons; and against `allowance` (the
        caller's allowed models and budget headroom) when given."""
        executor = self.executor
        unhealthy = executor.health.unavailable(executor.monotonic())
        return self.router.plan(request, self.rng, unhealthy, allowance)

    async def complete(
        self,
        request: ChatRequest,
        *,
        request_id: str | None = None,
        caller: str | None = None,
        principal: Principal | None = None,
    ) -> tuple[Decision, Outcome]:
        decision, request, who = await self.prepare(request, principal)
        ctx = CallContext(request_id or self.ids(), caller or request.user, principal=who)
        return decision, await self.executor.complete(decision, request, ctx)

    async def stream(
        self,
        request: ChatRequest,
        *,
        request_id: str | None = None,
        caller: str | None = None,
        principal: Principal | None = None,
    ) -> LiveStream:
        decision, request, who = await self.prepare(request, principal)
        ctx = CallContext(request_id or self.ids(), caller or request.user, principal=who)
        return await self.executor.stream(decision, request, ctx)

    async def prepare(
        self, request: ChatRequest, principal: Principal | None
    ) -> tuple[Decision, ChatRequest, Principal | None]:
        """Check the key's rules (403), plan against its budget headroom, count its
        rate limits (429), and cap `max_tokens` if the plan did."""
        if self.gate is None or principal is None:
            return self.route(request), request, principal
        if principal.user is None and request.user:
            principal = replace(principal, user=request.user)
        check_access(self, principal, request)
        decision = self.route(request, await self.gate.allowance(principal))
        req = decision.requirements
        await self.gate.admit(principal, req.prompt_tokens + (req.max_output_tokens or 0))
        cap = decision.capped_max_tokens
        if cap is not None:
            field = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
            request = request.model_copy(update={field: cap})
        return decision, request, principal


def check_access(engine: Engine, principal: Principal, request: ChatRequest) -> None:
    """403 naming the rule when the key may not use the model, policy or data class
    the request asks for."""
    key = principal.key
    if key is None:
        return
    target = engine.router.resolve(request)
    if target.name in engine.router.policies or target.name == "auto":
        policy = engine.router.default_policy if target.name == "auto" else target.name
        if not key.allows_policy(policy):
            raise PermissionDeniedError(
                f"key '{key.name}' may not use policy '{policy}' "
                f"(allowed policies: {', '.join(key.policies)})",
                param="model",
            )
    else:
        card = engine.catalog.resolve(target.name)
        if card is not None and not key.allows_model(card.id):
            raise PermissionDeniedError(
                f"key '{key.name}' may not use model '{card.id}' "
                f"(allowed models: {', '.join(key.models)})",
                param="model",
            )
    data_class = request.modelyard.data_class
    if data_class is not None and not key.allows_data_class(data_class):
        raise PermissionDeniedError(
            f"key '{key.name}' may not send {data_class.value} data "
            f"(its max data class is {key.max_data_class.value if key.max_data_class else '-'})"
        )


def build_policies(config: Config) -> dict[str, Policy]:
    """Instantiate each configured policy from its registered class and settings."""
    policies: dict[str, Policy] = {}
    for name, pc in config.policies.items():
        cls = plugins.load(plugins.POLICIES, pc.type)
        settings = plugins.validate_policy_settings(pc.type, pc.model_extra or {}, name)
        if isinstance(settings, FixedPolicy.Settings):
            resolve = config.aliases.get
            settings = settings.model_copy(
                update={
                    "model": resolve(settings.model, settings.model),
                    "fallback": [resolve(m, m) for m in settings.fallback],
                }
            )
        if isinstance(settings, ThresholdPolicy.Settings):
            resolve = config.aliases.get
            settings = settings.model_copy(
                update={
                    "strong": resolve(settings.strong, settings.strong),
                    "weak": resolve(settings.weak, settings.weak),
                }
            )
        with_aliases = getattr(settings, "with_aliases", None)
        if with_aliases is not None:
            settings = with_aliases(config.aliases)
        policies[name] = cls(settings)
    return policies


def build_scorer(config: Config, source: str = "config") -> Scorer:
    """The configured scorer, built once at start-up: a learned one loads its
    artifact and opens its encoder here. Scorer plugins with a `from_config`
    classmethod get the `scorer:` section; others are built without arguments."""
    factory = plugins.load(plugins.SCORERS, config.scorer.type)
    from_config = getattr(factory, "from_config", None)
    scorer: Scorer = from_config(config.scorer, source) if from_config else factory()
    return scorer


def build_limits(config: Config) -> Limits:
    r = config.resilience
    return Limits(
        max_attempts=r.max_attempts,
        request_timeout_s=r.request_timeout_s,
        attempt_timeout_s=r.attempt_timeout_s,
        first_token_timeout_s=r.first_token_timeout_s,
        retry_wait_max_s=r.retry_wait_max_s,
    )


def build_health(config: Config) -> HealthState:
    """In-process breakers; a shared (Redis) implementation plugs in here later."""
    b = config.resilience.breaker
    return InProcessHealth(BreakerSettings(b.failure_threshold, b.cooldown_s, b.half_open_probes))


def build_providers(
    catalog: Catalog, config: Config, env: Mapping[str, str], client: httpx.AsyncClient
) -> dict[str, ChatProvider]:
    """One adapter per enabled deployment, sharing one HTTP client. Keys are read here
    from the environment and handed to the adapter only."""
    providers: dict[str, ChatProvider] = {}
    # Lets the executor tell a call that reached the network from one that did not.
    watch_network(client)
    for name, dep in config.deployments.items():
        if name in catalog.unavailable:
            continue
        factory = plugins.load(plugins.ADAPTERS, dep.adapter)
        settings = DeploymentSettings(
            name=name,
            base_url=dep.base_url,
            api_key=dep.key_from(env),
            extra_headers=dict(dep.headers),
            timeout_s=dep.timeout_s,
            connect_timeout_s=dep.connect_timeout_s,
        )
        providers[name] = factory(settings, client)
    return providers


def build_engine(
    config: Config,
    *,
    env: Mapping[str, str],
    ledger: LedgerStore,
    client: httpx.AsyncClient | None = None,
    providers: Mapping[str, ChatProvider] | None = None,
    scorer: Scorer | None = None,
    rng: random.Random | None = None,
    ids: Callable[[], str] = new_id,
    source: str = "config",
    health: HealthState | None = None,
    clock: Callable[[], datetime] = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
) -> Engine:
    """Assemble an Engine. Pass `providers` to replace the wire adapters (replay,
    fault injection); otherwise adapters are built over `client`. `clock` and
    `monotonic` are injectable so a replay can run on a fake clock."""
    config = with_specialists(config, env, source=source)
    shadowed = shadows(config, env)
    catalog = build_catalog(config, env, source)
    if providers is None:
        providers = build_providers(catalog, config, env, client or httpx.AsyncClient())
    scorer = scorer or build_scorer(config, source)
    router = Router(catalog, build_policies(config), config.default_policy, scorer)
    executor = Executor(
        providers,
        ledger,
        ids=ids,
        health=health or build_health(config),
        limits=build_limits(config),
        clock=clock,
        monotonic=monotonic,
        # A shadowed task is captured too, so `distill` can retrain from that traffic.
        capture_tasks=frozenset(config.capture.tasks) | frozenset(shadowed),
    )
    if shadowed:
        executor.observer = ShadowRunner(shadowed, providers, ledger, ids, clock)
    return Engine(catalog, router, executor, ledger, rng or random.Random(), ids)
