"""What runners that make several calls per request share (cascades, councils): try a
slot's candidates in turn, one written-ahead provider call at a time, billing a
failure at once and leaving an answer unbilled until its fate (accepted, rejected,
served or not) is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from modelyard.attempt_types import Attempt, CallContext, FailedAttempt
from modelyard.attempts import enter_flight, leave_flight
from modelyard.errors import LowConfidenceError, ModelyardError
from modelyard.executor import Executor, _within
from modelyard.routing.plan import Decision, RankedCandidate
from modelyard.types import ChatRequest, Completion, Money


class MultiCallRun:
    """One request's calls: attempt count, deadline, cost billed so far, failures and
    skips."""

    def __init__(
        self, ex: Executor, decision: Decision, request: ChatRequest, ctx: CallContext
    ) -> None:
        self.ex = ex
        self.decision = decision
        self.request = request
        self.ctx = ctx
        self.deadline = ex.monotonic() + ex.limits.request_timeout_s
        self.attempts = 0
        self.cost: Money = Decimal(0)
        self.failed: list[FailedAttempt] = []
        self.skipped: list[str] = []

    def remaining(self) -> float:
        return self.deadline - self.ex.monotonic()

    async def first_answer(
        self, slot: Sequence[RankedCandidate], ctx: CallContext
    ) -> tuple[Attempt, Completion] | None:
        """The slot's first candidate that answers, trying at most `max_attempts`;
        an unhealthy deployment is skipped with its reason."""
        tries = 0
        for candidate in slot:
            if tries >= self.ex.limits.max_attempts or self.remaining() <= 0:
                break
            deployment = candidate.card.deployment.name
            if not self.ex.health.acquire(deployment, self.ex.monotonic()):
                reason = self.ex.health.unavailable(self.ex.monotonic()).get(deployment, "busy")
                self.skipped.append(f"{candidate.card.id}: skipped ({reason})")
                continue
            tries += 1
            if (got := await self.call(candidate, ctx)) is not None:
                return got
        return None

    async def call(
        self, candidate: RankedCandidate, ctx: CallContext
    ) -> tuple[Attempt, Completion] | None:
        """One provider call, written ahead like every attempt (the `started` record is
        committed before the call can leave the process). A failure is billed now and
        gives None; an answer comes back unbilled."""
        ex = self.ex
        self.attempts += 1
        attempt = await ex._begin(self.decision, ctx, candidate, self.attempts)
        provider = ex.providers[candidate.card.deployment.name]
        limit = max(0.0, min(ex.limits.attempt_timeout_s, self.remaining()))
        attempt.flight, token = enter_flight()
        try:
            completion = await _within(
                provider.complete(self.request, candidate.card.upstream), limit, candidate
            )
        except LowConfidenceError as exc:
            # A specialist unsure of itself: billed as escalated, the slot falls back.
            usage = exc.completion.usage
            self.cost += await ex.bill(
                self.decision, ctx, attempt, usage, "escalated", exc, exc.confidence
            )
            self.failed.append(FailedAttempt(candidate.card.id, exc))
            return None
        except ModelyardError as exc:
            await ex._failure(self.decision, ctx, attempt, exc)
            self.failed.append(FailedAttempt(candidate.card.id, exc))
            return None
        except BaseException as exc:
            await ex._abandoned(self.decision, ctx, attempt, exc)
            raise
        finally:
            leave_flight(token)
        return attempt, completion
