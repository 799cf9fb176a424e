"""The verifier protocol: is a cascade hop's answer good enough to serve?

A verifier sees the hop's answers (one, or several from a tier answering in
parallel), the answers of the hops before it, and the request; it returns a
`Verdict`: accept or reject, a score in [0, 1] where it has one, a reason, and which
of the hop's answers to serve. Verifiers are registered under the
`modelyard.verifiers` entry-point group, each class with its own strict `Settings`::

    [project.entry-points."modelyard.verifiers"]
    mine = "my_pkg.verify:MyVerifier"

A verifier that needs a model call (`judge`) makes it through `VerifyContext.call`,
which routes and bills it like any other call; the others are pure functions of
their input. A verifier that raises is a rejection (the cascade runner catches it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from modelyard.types import ChatRequest, Completion, Money


@dataclass(frozen=True, slots=True)
class Answer:
    """One model's answer within a cascade: who gave it, at which hop, and what it said."""

    model_id: str
    step: int
    completion: Completion

    @property
    def text(self) -> str:
        """The answer's text; a tool call reads as its name and JSON arguments."""
        if self.completion.content:
            return self.completion.content
        return "".join(c.function.name + c.function.arguments for c in self.completion.tool_calls)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Accept or reject; `chosen` indexes the hop's answers (the one to serve)."""

    accepted: bool
    score: float | None
    reason: str
    chosen: int = 0


@dataclass(frozen=True, slots=True)
class JudgeReply:
    """What a routed verification call returned, and what it cost."""

    completion: Completion
    model_id: str
    cost_usd: Money


JudgeCall = Callable[[ChatRequest], Awaitable[JudgeReply]]


@dataclass(frozen=True, slots=True)
class VerifyContext:
    """Everything a verifier may look at for one hop.

    `answers`: this hop's answers, in the tier's order; `earlier`: every answer of
    the hops before (agreement may count them); `call`: routes and bills a model
    call (the judge's), tagged with this hop and the role `judge`."""

    request: ChatRequest
    step: int
    answers: tuple[Answer, ...]
    earlier: tuple[Answer, ...] = ()
    call: JudgeCall | None = None


class VerifierSettings(BaseModel):
    """Settings every verifier has; each verifier extends it. `type` names the verifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str


class Verifier(Protocol):
    """Judges a hop's answers. `name` is the registered type; `Settings` its config."""

    name: ClassVar[str]

    async def verify(self, ctx: VerifyContext) -> Verdict:
        """The verdict on `ctx.answers`; may raise (the runner counts that as a rejection)."""
        ...


def describe(settings: BaseModel) -> dict[str, Any]:
    """A verifier's settings as JSON-ready data (for `/v1/route` and the ledger)."""
    return settings.model_dump(mode="json", exclude_none=True)
