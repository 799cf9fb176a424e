"""Running an embeddings decision: the executor's walk down the ranked candidates
(attempt cap, deadline, breakers, Retry-After, budgets), with one written-ahead,
billed ledger record per provider call, exactly as for chat.

A retryable failure (connect error, timeout, 429, 5xx, a malformed answer or one
with the wrong number or size of vectors) moves on to the next qualified model;
the caller's own 4xx from an upstream is returned as is. Note that vectors of two
different models live in different spaces: see docs/design-notes.md on pinning a
model for vectors that are stored.
"""

from __future__ import annotations

import math
from dataclasses import replace

from modelyard.attempt_types import CallContext
from modelyard.attempts import checked_usage, enter_flight, leave_flight
from modelyard.catalog.tokens import scale_for_family
from modelyard.embed.request import EmbeddingInputs, EmbeddingRequest
from modelyard.embed.result import EmbeddingOutcome, EmbeddingResult, EmbeddingsProvider
from modelyard.errors import ModelyardError, ProviderResponseError, ProviderServerError
from modelyard.executor import Executor, _Run, _within
from modelyard.ledger.records import UsageSource
from modelyard.routing.plan import Decision, RankedCandidate
from modelyard.types import Usage


async def run_embeddings(
    ex: Executor,
    decision: Decision,
    request: EmbeddingRequest,
    inputs: EmbeddingInputs,
    ctx: CallContext,
) -> EmbeddingOutcome:
    """Try the decision's candidates in order until one returns the vectors."""
    run = _Run(ex, decision)
    while (candidate := await run.next()) is not None:
        if (outcome := await _attempt(ex, run, candidate, request, inputs, ctx)) is not None:
            return outcome
    raise run.exhausted()


async def _attempt(
    ex: Executor,
    run: _Run,
    candidate: RankedCandidate,
    request: EmbeddingRequest,
    inputs: EmbeddingInputs,
    ctx: CallContext,
) -> EmbeddingOutcome | None:
    """One billed attempt: the outcome, or None after a retryable failure."""
    card = candidate.card
    spec = card.embedding
    provider = ex.providers[card.deployment.name]
    if (attempt := await ex._begin_or_skip(run, ctx, candidate)) is None:
        return None
    asked = request.dimensions
    limit = run.timeout(ex.limits.attempt_timeout_s)
    attempt.flight, token = enter_flight()
    try:
        if spec is None or not isinstance(provider, EmbeddingsProvider):
            raise ProviderServerError(f"{card.deployment.name}: does not serve embeddings")
        work = provider.embed(
            request,
            inputs,
            card.upstream,
            # A fixed-size model is never sent `dimensions` (OpenAI's ada-002 refuses it).
            dimensions=asked if spec.shortenable else None,
        )
        result = await _within(work, limit, candidate)
        check_vectors(result, asked or spec.dimensions, card.deployment.name)
    except ModelyardError as exc:
        await ex._failure(run.decision, ctx, attempt, exc)
        run.failed_with(candidate, exc)
        return None
    except BaseException as exc:
        await ex._abandoned(run.decision, ctx, attempt, exc)
        raise
    finally:
        leave_flight(token)
    usage, source = _usage(run.decision, ctx, candidate, result)
    cost = await ex.bill(run.decision, ctx, attempt, usage, "ok", None, source=source)
    return EmbeddingOutcome(replace(result, usage=usage), card, cost, tuple(run.failed))


def _usage(
    decision: Decision,
    ctx: CallContext,
    candidate: RankedCandidate,
    result: EmbeddingResult,
) -> tuple[Usage, UsageSource]:
    """The tokens to bill: the provider's count if it gave a believable one, else
    our estimate of the input (flagged `estimated`)."""
    card = candidate.card
    estimate = scale_for_family(decision.requirements.prompt_tokens, card.family)
    if result.usage is None:
        return Usage(input_tokens=estimate), "estimated"
    return checked_usage(
        result.usage,
        card,
        prompt_tokens=decision.requirements.prompt_tokens,
        output_text="",
        request_id=ctx.request_id,
    )


def check_vectors(result: EmbeddingResult, dimensions: int, provider: str) -> None:
    """Every vector has `dimensions` finite numbers, or the answer is malformed
    (retryable: the next model may answer properly)."""
    for index, vector in enumerate(result.vectors):
        if len(vector) != dimensions:
            raise ProviderResponseError(
                f"{provider}: embedding {index} has {len(vector)} dimensions, "
                f"expected {dimensions}",
                provider=provider,
            )
        # One C-speed sum instead of a check per number: NaN or ±inf anywhere
        # makes the sum non-finite (so does an absurd magnitude, equally wrong).
        if not math.isfinite(sum(vector)):
            raise ProviderResponseError(
                f"{provider}: embedding {index} has a non-finite value", provider=provider
            )
