"""The `agreement` verifier: accept when enough answers agree on their final answer.

    verifier: {type: agreement, min_agree: 2, extract: choice}

The pool is this hop's answers plus every earlier hop's (so tiers `[a, b, c]` accept
b's answer when a and b agree, and a parallel tier `[b, c]` when its members do).
Each answer is reduced to a key by an extractor (`auto`, `choice`, `number`, `label`,
`json`, or a plugin; see `extract`), or, when it carries one, by its already-parsed
answer (`Completion.parsed_answer`, set by the replay harness). An answer whose
extractor finds nothing agrees with nobody. Free text (`extract: text`, or `auto`
when no answer yields a key) is compared by similarity: sentence embeddings when the
`learned` extra is installed, else token overlap. The score is the share of the
required agreement reached (agreeing answers / `min_agree`, at most 1): an answer is
accepted exactly when its score is 1.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import anyio
from pydantic import Field, field_validator

from modelyard import plugins
from modelyard.verifiers.base import Answer, Verdict, VerifierSettings, VerifyContext
from modelyard.verifiers.extract import ExtractOptions, Extractor, normalise_parsed

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"\w+", re.UNICODE)
# Below these, two free-text answers are different answers.
DEFAULT_MIN_SIMILARITY = {"embedding": 0.85, "tokens": 0.5}


class AgreementVerifier:
    """Accept a hop's answer when at least `min_agree` answers in the pool agree with it."""

    name: ClassVar[str] = "agreement"

    class Settings(VerifierSettings):
        type: Literal["agreement"] = "agreement"
        min_agree: int = Field(default=2, ge=2)
        extract: str = "auto"
        field: str = "answer"
        labels: list[str] = Field(default_factory=list)
        similarity: Literal["auto", "embedding", "tokens"] = "auto"
        min_similarity: float | None = Field(default=None, gt=0, le=1)
        encoder: str | None = None

        @field_validator("extract")
        @classmethod
        def _known_extractor(cls, value: str) -> str:
            known = plugins.names(plugins.EXTRACTORS) | {"text"}
            if value not in known:
                raise ValueError(f"unknown extractor '{value}' (known: {', '.join(sorted(known))})")
            return value

    def __init__(self, settings: Settings | None = None, *, encoder: Any = None) -> None:
        self.settings = settings or self.Settings()
        self.options = ExtractOptions(self.settings.field, tuple(self.settings.labels))
        self._extractor: Extractor | None = (
            None if self.settings.extract == "text" else _load_extractor(self.settings.extract)
        )
        self._encoder = encoder
        self.similarity = _similarity_kind(self.settings.similarity, encoder)

    async def verify(self, ctx: VerifyContext) -> Verdict:
        pool = (*ctx.answers, *ctx.earlier)
        if not ctx.answers:
            return Verdict(False, 0.0, "no answer to verify")
        keys = [self.key(a) for a in pool]
        if self._extractor is not None and any(k is not None for k in keys):
            support = _support_by_key(keys, len(ctx.answers))
            how = "on the extracted answer"
        elif self._extractor is not None and self.settings.extract != "auto":
            return Verdict(False, 0.0, f"the {self.settings.extract} extractor found nothing")
        else:
            support = await self._support_by_similarity(pool, len(ctx.answers))
            how = f"by {self.similarity} similarity"
        best = max(range(len(ctx.answers)), key=lambda i: (support[i], -i))
        agree, need = support[best], self.settings.min_agree
        key = keys[best]
        shown = f" '{key}'" if key is not None else ""
        reason = f"{agree} of {len(pool)} answers agree{shown} {how} (min_agree {need})"
        return Verdict(agree >= need, min(1.0, agree / need), reason, chosen=best)

    def key(self, answer: Answer) -> str | None:
        """The answer's comparable key, or None when nothing could be extracted."""
        if answer.completion.parsed_answer is not None:
            return normalise_parsed(answer.completion.parsed_answer)
        if self._extractor is None:
            return None
        try:
            return self._extractor(answer.text, self.options)
        except Exception:  # a plugin extractor's bug: this answer agrees with nobody
            log.warning("agreement: extractor %s raised", self.settings.extract, exc_info=True)
            return None

    async def _support_by_similarity(self, pool: Sequence[Answer], current: int) -> list[int]:
        texts = [a.text for a in pool]
        if self.similarity == "embedding":
            sims = await anyio.to_thread.run_sync(self._embedding_similarities, texts)
        else:
            sims = token_similarities(texts)
        floor = self.settings.min_similarity or DEFAULT_MIN_SIMILARITY[self.similarity]
        return [
            1 + sum(1 for j in range(len(pool)) if j != i and sims[i][j] >= floor)
            for i in range(current)
        ]

    def _embedding_similarities(self, texts: list[str]) -> list[list[float]]:
        if self._encoder is None:
            from modelyard.embeddings import DEFAULT_ENCODER, load_encoder
            from modelyard.errors import ConfigError

            try:
                self._encoder = load_encoder(self.settings.encoder or DEFAULT_ENCODER)
            except ConfigError as exc:
                if self.settings.similarity == "embedding":
                    raise
                # `auto` asked for embeddings only if they work here: fall back, once.
                log.warning("agreement: no sentence encoder (%s); using token overlap", exc)
                self.similarity = "tokens"
                return token_similarities(texts)
        vectors = self._encoder.encode(texts)
        sims: list[list[float]] = (vectors @ vectors.T).tolist()
        return sims


def token_similarities(texts: Sequence[str]) -> list[list[float]]:
    """Pairwise token-set overlap (Dice: 2|A∩B| / (|A|+|B|)), 0 for an empty text."""
    sets = [set(_TOKEN.findall(t.casefold())) for t in texts]
    return [[(2 * len(a & b) / (len(a) + len(b))) if a and b else 0.0 for b in sets] for a in sets]


def _support_by_key(keys: Sequence[str | None], current: int) -> list[int]:
    """For each current answer, how many answers in the pool share its key (0 if none)."""
    return [0 if keys[i] is None else sum(1 for k in keys if k == keys[i]) for i in range(current)]


def _similarity_kind(wanted: str, encoder: Any) -> Literal["embedding", "tokens"]:
    if wanted == "tokens":
        return "tokens"
    if encoder is not None or wanted == "embedding":
        return "embedding"
    # `auto`: embeddings only when the `learned` extra (NumPy, ONNX Runtime) is there.
    have = all(importlib.util.find_spec(m) is not None for m in ("numpy", "onnxruntime"))
    return "embedding" if have else "tokens"


def _load_extractor(name: str) -> Extractor:
    extractor: Extractor = plugins.load(plugins.EXTRACTORS, name)
    return extractor
