"""The attempt life cycle's pure parts: did a call reach the network, what does an
attempt reserve, and can the usage a provider reported be trusted.

    started (written ahead, estimate) ─► ok | error | cancelled | escalated
                 │                         (completed in place, same record id)
                 ├─► discarded: the call never reached the network (not billed)
                 └─► interrupted: the process died; closed at the next start-up,
                     billed at the estimate (`usage_source: estimated`)

The executor drives it; these helpers keep the executor's billing points short.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final

import httpx

from modelyard.catalog.cards import ModelCard
from modelyard.catalog.tokens import count_text, scale_for_family
from modelyard.embed.request import MAX_INPUTS
from modelyard.ledger.records import UsageSource
from modelyard.types import Completion, Money, Usage

log = logging.getLogger("modelyard.executor")

# One attempt costs at most this much (a guard far above any real price, and far
# below the ledger's 64-bit nano-dollar column: 9.2e9 dollars).
MAX_ATTEMPT_COST_USD: Final = Decimal(1_000_000)


@dataclass(slots=True)
class InFlight:
    """Set while one attempt's provider call runs; `sent` turns true when an HTTP
    request of that call is about to go on the wire (httpx's request hook)."""

    sent: bool = False


_IN_FLIGHT: ContextVar[InFlight | None] = ContextVar("modelyard_in_flight", default=None)


def enter_flight() -> tuple[InFlight, object]:
    """Mark the current task as running a provider call; returns the marker and a
    token for `leave_flight`. Tasks inherit context, so a hedge's task has its own."""
    flight = InFlight()
    return flight, _IN_FLIGHT.set(flight)


def leave_flight(token: object) -> None:
    """Undo `enter_flight`."""
    _IN_FLIGHT.reset(token)  # type: ignore[arg-type]


async def mark_sent(_: httpx.Request) -> None:
    """httpx request hook: the running attempt (if any) has reached the network."""
    flight = _IN_FLIGHT.get()
    if flight is not None:
        flight.sent = True


def watch_network(client: httpx.AsyncClient) -> None:
    """Install `mark_sent` on the shared upstream client (once)."""
    hooks = client.event_hooks
    if mark_sent not in hooks["request"]:
        hooks["request"].append(mark_sent)
        client.event_hooks = hooks


def reached_network(provider: object, flight: InFlight) -> bool:
    """Whether an interrupted call may have cost money. HTTP adapters say so by
    `remote = True` and count only once a request left; anything else (in-process
    providers, plugins) is presumed reached: billing a call is safer than losing one."""
    return flight.sent or not getattr(provider, "remote", False)


def reservation(card: ModelCard, prompt_tokens: int, max_output: int | None) -> Usage:
    """What an attempt may cost at most: its prompt, plus the output it may produce
    (the caller's cap, else the card's). Written ahead, billed if the process dies."""
    limit = card.max_output_tokens
    output = min(max_output, limit) if max_output and limit else (max_output or limit or 0)
    return Usage(input_tokens=scale_for_family(prompt_tokens, card.family), output_tokens=output)


def usage_problem(usage: Usage, card: ModelCard) -> str | None:
    """Why `usage` cannot be true for one call to `card`, or None if it can."""
    counts = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
    )
    if any(type(n) is not int for n in counts):
        return "a token count is not an integer"
    if any(n < 0 for n in counts):
        return "a token count is negative"
    ceiling = card.context_window + card.max_output_tokens
    if card.embedding is not None:  # a context window per input, many inputs per call
        ceiling = card.context_window * MAX_INPUTS
    if ceiling > 0 and usage.input_tokens + usage.output_tokens > ceiling:
        return f"more tokens than the model's context plus output ({ceiling})"
    if usage.cached_input_tokens > usage.input_tokens:
        return "more cached input tokens than input tokens"
    cost = usage.cost_usd
    if cost is not None and not (cost.is_finite() and 0 <= cost <= MAX_ATTEMPT_COST_USD):
        return f"an impossible cost ({cost})"
    return None


def checked_usage(
    usage: Usage,
    card: ModelCard,
    *,
    prompt_tokens: int,
    output_text: str,
    request_id: str,
) -> tuple[Usage, UsageSource]:
    """`usage` if it can be true; else the tokenizer's estimate (prompt estimate and
    the text actually produced), logged and flagged `estimated`. Never raises."""
    problem = usage_problem(usage, card)
    if problem is None:
        return usage, "reported"
    log.warning(
        "request %s: %s reported impossible usage (%s); billing the tokenizer's estimate",
        request_id,
        card.id,
        problem,
    )
    estimate = Usage(
        input_tokens=scale_for_family(prompt_tokens, card.family),
        output_tokens=count_text(output_text),
    )
    return estimate, "estimated"


def completion_text(completion: Completion) -> str:
    """The text an answer produced (content and tool calls), for an output estimate."""
    calls = "".join(c.function.name + c.function.arguments for c in completion.tool_calls)
    return (completion.content or "") + calls


def with_usage(completion: Completion, usage: Usage) -> Completion:
    """`completion` carrying the usage that was billed (what the response shows)."""
    return completion if completion.usage == usage else replace(completion, usage=usage)


def safe_cost(cost: Money) -> Money:
    """A cost the ledger can hold: never negative, never beyond the per-call guard."""
    if not cost.is_finite() or cost < 0:
        return Decimal(0)
    return min(cost, MAX_ATTEMPT_COST_USD)
