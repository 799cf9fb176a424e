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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

import httpx

from modelyard import plugins
from modelyard.attempts import watch_network
from modelyard.budgets.fit import Allowance
from modelyard.budgets.gate import BudgetGate
from modelyard.cache import ResponseCache, memory_cache
from modelyard.cache.keep import StreamKeeper, keep_outcome
from modelyard.cache.response_cache import Probe
from modelyard.cache.serve import hit_decision, serve_outcome, serve_stream, unusable
from modelyard.catalog.catalog import Catalog, build_catalog
from modelyard.config import Config
from modelyard.embed.request import EmbeddingRequest, check_inputs, embedding_requirements
from modelyard.embed.result import EmbeddingOutcome
from modelyard.embed.runner import run_embeddings
from modelyard.errors import ModelyardError, PermissionDeniedError
from modelyard.executor import CallContext, Executor, Limits, Outcome, utc_now
from modelyard.health import BreakerSettings, HealthState, InProcessHealth
from modelyard.keys import Principal
from modelyard.ledger.records import LedgerStore
from modelyard.live_stream import LiveStream
from modelyard.observability.hooks import RequestEnd, Telemetry, status_of
from modelyard.providers.base import ChatProvider, DeploymentSettings
from modelyard.routing.embeddings import plan_embeddings
from modelyard.routing.plan import Decision
from modelyard.routing.policies import FixedPolicy, Policy
from modelyard.routing.router import Router
from modelyard.routing.scorers import Scorer
from modelyard.routing.threshold import ThresholdPolicy
from modelyard.specialists.shadow import ShadowRunner
from modelyard.specialists.stack import shadows, with_specialists
from modelyard.types import ChatRequest, Routed


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
    # Issue 17: the response cache (None: off).
    cache: ResponseCache | None = None
    # Issue 15: metrics and traces (None: nothing observes; see `observe`).
    telemetry: Telemetry | None = None

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

    def observe(self, telemetry: Telemetry | None) -> None:
        """Report every request (here) and every attempt (the executor) to `telemetry`."""
        self.telemetry = telemetry
        self.executor.telemetry = telemetry

    async def complete(
        self,
        request: ChatRequest,
        *,
        request_id: str | None = None,
        caller: str | None = None,
        principal: Principal | None = None,
    ) -> tuple[Decision, Outcome]:
        t0 = self.executor.monotonic()
        request_id = request_id or self.ids()
        seen = self.telemetry
        with _watched(seen, request_id, request) as watch:
            probe = await self.probe(request, principal)
            if probe is not None and probe.answer is not None:
                decision = watch.decision = hit_decision(self.ids(), probe.answer, request)
                ctx = await self._hit_context(request, request_id, caller, principal)
                outcome = await serve_outcome(self.executor, self.catalog, decision, ctx, probe, t0)
            else:
                decision, request, who = await self.prepare(request, principal)
                watch.decision = decision
                ctx = CallContext(request_id, caller or request.user, principal=who)
                outcome = await self.executor.complete(decision, request, ctx)
                if probe is not None and self.cache is not None:
                    now = self.executor.clock()
                    outcome = await keep_outcome(self.cache, probe, decision, ctx, outcome, now)
        if seen is not None:
            end = RequestEnd(
                200,
                decision,
                outcome.card.id,
                outcome.failed,
                outcome.cascade,
                outcome.cost_usd,
                outcome.completion.usage,
            )
            seen.request_ended(request_id, end)
        return decision, outcome

    async def stream(
        self,
        request: ChatRequest,
        *,
        request_id: str | None = None,
        caller: str | None = None,
        principal: Principal | None = None,
    ) -> LiveStream:
        t0 = self.executor.monotonic()
        request_id = request_id or self.ids()
        seen = self.telemetry
        with _watched(seen, request_id, request) as watch:
            probe = await self.probe(request, principal)
            if probe is not None and probe.answer is not None:
                decision = watch.decision = hit_decision(self.ids(), probe.answer, request)
                ctx = await self._hit_context(request, request_id, caller, principal)
                live = await serve_stream(
                    self.executor, self.catalog, decision, ctx, probe, t0, request
                )
            else:
                decision, request, who = await self.prepare(request, principal)
                watch.decision = decision
                ctx = CallContext(request_id, caller or request.user, principal=who)
                live = await self.executor.stream(decision, request, ctx)
                if probe is not None and self.cache is not None:
                    live.cache = probe.note
                    live.tap = StreamKeeper(self.cache, probe, ctx, self.executor.clock)
        if seen is not None:
            live.on_end = _stream_end(seen, request_id, live)
        return live

    async def probe(self, request: ChatRequest, principal: Principal | None) -> Probe | None:
        """Look `request` up in the response cache (None when it is off), after the
        key's access rules (403) and the model's existence (404) are checked."""
        if self.cache is None:
            return None
        if self.gate is not None and principal is not None:
            check_access(self, principal, request)
        target = self.router.resolve(request)
        name = target.name
        if name not in self.router.policies:
            card = self.catalog.resolve(name)
            name = card.id if card is not None else name
        return await self.cache.lookup(
            request,
            target=name,
            key_id=principal.key_id if principal is not None else None,
            unusable=unusable(self.catalog, principal),
        )

    async def _hit_context(
        self,
        request: ChatRequest,
        request_id: str,
        caller: str | None,
        principal: Principal | None,
    ) -> CallContext:
        """Who a hit is billed to; it counts against the key's request rate (429) but
        uses no tokens and reserves no budget: it costs nothing."""
        if principal is not None and principal.user is None and request.user:
            principal = replace(principal, user=request.user)
        if self.gate is not None and principal is not None:
            await self.gate.admit(principal, 0)
        return CallContext(request_id, caller or request.user, principal=principal)

    async def embed(
        self,
        request: EmbeddingRequest,
        *,
        request_id: str | None = None,
        principal: Principal | None = None,
    ) -> tuple[Decision, EmbeddingOutcome]:
        """Route and run an embeddings request (see `modelyard.embed`): the key's
        rules, budgets and rate limits apply as for chat."""
        inputs = check_inputs(request)
        req = embedding_requirements(request, inputs)
        unhealthy = self.executor.health.unavailable(self.executor.monotonic())
        allowance = None
        if self.gate is not None and principal is not None:
            if principal.user is None and request.user:
                principal = replace(principal, user=request.user)
            check_access(self, principal, request)
            allowance = await self.gate.allowance(principal)
        decision = plan_embeddings(self.router, request, req, self.rng, unhealthy, allowance)
        if self.gate is not None and principal is not None:
            await self.gate.admit(principal, req.prompt_tokens)
        ctx = CallContext(request_id or self.ids(), request.user, principal=principal)
        outcome = await run_embeddings(self.executor, decision, request, inputs, ctx)
        return decision, outcome

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


@dataclass
class _Watch:
    """The request's decision once planned, for the telemetry's report of a failure."""

    decision: Decision | None = None


@contextmanager
def _watched(seen: Telemetry | None, request_id: str, request: ChatRequest) -> Iterator[_Watch]:
    """Reports the request's start to `seen`, and its end if it fails (with its
    decision, when it got that far); a success is reported by the caller."""
    watch = _Watch()
    if seen is None:
        yield watch
        return
    seen.request_started(request_id, request)
    try:
        yield watch
    except BaseException as exc:
        seen.request_ended(request_id, RequestEnd(status_of(exc), watch.decision, error=exc))
        raise


def _stream_end(
    seen: Telemetry, request_id: str, live: LiveStream
) -> Callable[[ModelyardError | None], None]:
    """Reports the stream's request when its last chunk went out (or it broke)."""

    def ended(error: ModelyardError | None) -> None:
        status = 200 if error is None else status_of(error)
        cost = None if live.cost_usd is None else live.cost_usd + live.prior_cost
        end = RequestEnd(
            status, live.decision, live.card.id, live.failed, live.cascade, cost, live.usage, error
        )
        seen.request_ended(request_id, end)

    return ended


def check_access(engine: Engine, principal: Principal, request: Routed) -> None:
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
    cache = memory_cache(config.cache, env, monotonic)
    return Engine(catalog, router, executor, ledger, rng or random.Random(), ids, cache=cache)
