"""The `judge` verifier: a model grades the answer against a rubric (AutoMix-style).

    verifier: {type: judge, model: gpt-4o-mini, threshold: 0.7}

The judge's request is an ordinary chat request to `model` (a model id, an alias or
a non-cascade policy), so it is routed, falls back and is billed like any call (and
keeps the request's data class: the judge reads the conversation); its ledger
records carry the cascade's decision id, the hop, and the role `judge`. The
judge is asked for a score from 0 to 10; the verdict's score is that over 10, and the
answer is accepted when it reaches `threshold`. A reply without a score is an error
(the cascade counts it as a rejection).
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field

from modelyard.types import ChatRequest, Message, RoutingHints
from modelyard.verifiers.base import Answer, Verdict, VerifierSettings, VerifyContext

DEFAULT_RUBRIC = (
    "You grade answers. Read the user's request and the candidate answer. Judge whether "
    "the answer is correct, complete and follows the request. Reply with one line: "
    "'Score: N', where N is an integer from 0 (wrong or useless) to 10 (fully correct)."
)
_SCORE = re.compile(r"(?i:score)\W{0,4}(\d+(?:\.\d+)?)|^\s*(\d+(?:\.\d+)?)\b")


class JudgeVerifier:
    """Ask a (routed, billed) model to score each answer; accept the best if it passes."""

    name: ClassVar[str] = "judge"

    class Settings(VerifierSettings):
        type: Literal["judge"] = "judge"
        model: str
        threshold: float = Field(default=0.7, ge=0, le=1)
        rubric: str = DEFAULT_RUBRIC
        max_tokens: int = Field(default=64, gt=0)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def verify(self, ctx: VerifyContext) -> Verdict:
        if ctx.call is None:
            raise RuntimeError("the judge verifier needs a way to call a model")
        scores: list[float] = []
        for answer in ctx.answers:
            reply = await ctx.call(self.judge_request(ctx.request, answer))
            scores.append(parse_score(reply.completion.content or ""))
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        score, threshold = scores[best], self.settings.threshold
        verb = ">=" if score >= threshold else "<"
        reason = f"judge {self.settings.model} scored {score:.2f} {verb} threshold {threshold:g}"
        return Verdict(score >= threshold, score, reason, chosen=best)

    def judge_request(self, request: ChatRequest, answer: Answer) -> ChatRequest:
        """The grading request: the rubric, then the conversation and the answer."""
        conversation = "\n".join(f"[{m.role}] {m.text()}" for m in request.messages)
        prompt = f"Request:\n{conversation}\n\nCandidate answer:\n{answer.text}"
        return ChatRequest(
            model=self.settings.model,
            messages=[
                Message(role="system", content=self.settings.rubric),
                Message(role="user", content=prompt),
            ],
            max_tokens=self.settings.max_tokens,
            temperature=0,
            user=request.user,
            # The judge reads the conversation: it may only go where the request may.
            modelyard=RoutingHints(data_class=request.modelyard.data_class),
        )


def parse_score(text: str) -> float:
    """'Score: 7' (or a reply starting with a number) → 0.7; raises when there is none
    or it is outside 0..10."""
    m = _SCORE.search(text)
    if m is None:
        raise ValueError(f"the judge gave no score: {text[:80]!r}")
    value = float(m.group(1) or m.group(2))
    if not 0 <= value <= 10:
        raise ValueError(f"the judge's score {value:g} is outside 0..10")
    return value / 10
