"""Claims: free-text answers split into sentences, matched across members.

A claim from one member is *supported* by another member when that member said
something the matcher judges the same (similarity at or above the threshold), and
*contradicted* when the other member said something on the same subject (related,
below the threshold) that differs in its numbers or its negation. The matcher is
pluggable (`ClaimMatcher`): sentence embeddings (MiniLM, when the `learned` extra
is installed), else token overlap; an NLI or LLM matcher can replace either.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from modelyard.verifiers.agreement import token_similarities

log = logging.getLogger(__name__)

Relation = Literal["supports", "contradicts"] | None
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])|\n+")
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")
_NEGATION = re.compile(r"\b(?:not|no|never|none|cannot|isn't|aren't|doesn't|don't|won't)\b", re.I)
_MIN_CLAIM_CHARS = 3


def split_claims(text: str) -> list[str]:
    """A text's claims: its sentences (and lines), stripped, without list markers."""
    parts = (p.strip().lstrip("-*• ").strip() for p in _SENTENCE.split(text or ""))
    return [p for p in parts if len(p) >= _MIN_CLAIM_CHARS]


class ClaimMatcher(Protocol):
    """Relates claims pairwise: `relations(claims)[i][j]` is how claim j bears on
    claim i (supports, contradicts, or neither)."""

    @property
    def name(self) -> str: ...

    def relations(self, claims: Sequence[str]) -> list[list[Relation]]: ...


@dataclass
class SimilarityMatcher:
    """Same claim at `threshold` similarity or above; a related claim (at or above
    `related`) with different numbers or negation contradicts. `similarities` gives
    the pairwise matrix (token overlap by default)."""

    threshold: float = 0.5
    related: float = 0.3
    name: str = "tokens"
    encoder: Any = None

    def similarities(self, claims: Sequence[str]) -> list[list[float]]:
        if self.encoder is None:
            return token_similarities(claims)
        vectors = self.encoder.encode(list(claims))
        sims: list[list[float]] = (vectors @ vectors.T).tolist()
        return sims

    def relations(self, claims: Sequence[str]) -> list[list[Relation]]:
        sims = self.similarities(claims) if claims else []
        out: list[list[Relation]] = []
        for i, a in enumerate(claims):
            row: list[Relation] = []
            for j, b in enumerate(claims):
                row.append(self._relate(a, b, sims[i][j]))
            out.append(row)
        return out

    def _relate(self, a: str, b: str, sim: float) -> Relation:
        differs = _numbers(a) != _numbers(b) or _negated(a) != _negated(b)
        if sim >= self.threshold:
            # Near-identical wording with a different number is a contradiction.
            return "contradicts" if differs and _numbers(a) and _numbers(b) else "supports"
        if sim >= self.related and differs:
            return "contradicts"
        return None


def default_matcher(kind: str = "auto") -> ClaimMatcher:
    """MiniLM sentence embeddings when they load here, else (for `auto`) token overlap;
    `embedding` raises when the encoder cannot load."""
    have = all(importlib.util.find_spec(m) is not None for m in ("numpy", "onnxruntime"))
    if have or kind == "embedding":
        try:
            from modelyard.embeddings import DEFAULT_ENCODER, load_encoder

            encoder = load_encoder(DEFAULT_ENCODER)
            return SimilarityMatcher(threshold=0.8, related=0.6, name="embedding", encoder=encoder)
        except Exception as exc:  # no model files here: token overlap still works
            if kind == "embedding":
                raise
            log.info("council: no sentence encoder (%s); matching claims by token overlap", exc)
    return SimilarityMatcher()


class LazyMatcher:
    """A matcher of `kind` (`auto`, `embedding`, `tokens`) built on first use: a vote
    council never needs the sentence encoder, and a claims council loads it in the
    worker thread that matches, not on the event loop."""

    def __init__(self, kind: str = "auto") -> None:
        self.kind = kind
        self._inner: ClaimMatcher | None = None

    def _get(self) -> ClaimMatcher:
        if self._inner is None:
            try:
                self._inner = (
                    SimilarityMatcher() if self.kind == "tokens" else default_matcher(self.kind)
                )
            except Exception as exc:  # no encoder here: a request must still be answered
                log.warning("council: %s matcher unavailable (%s); token overlap", self.kind, exc)
                self._inner = SimilarityMatcher()
        return self._inner

    @property
    def name(self) -> str:
        return self._get().name

    def relations(self, claims: Sequence[str]) -> list[list[Relation]]:
        return self._get().relations(claims)


def _numbers(text: str) -> frozenset[str]:
    return frozenset(n.replace(",", "") for n in _NUMBER.findall(text))


def _negated(text: str) -> bool:
    return len(_NEGATION.findall(text)) % 2 == 1


@dataclass(frozen=True, slots=True)
class Claim:
    """One claim, who said it, and which other members support or contradict it."""

    text: str
    member: str
    supporting: tuple[str, ...]
    contradicting: tuple[str, ...]

    def to_json(self, zone: str) -> dict[str, Any]:
        return {
            "text": self.text,
            "member": self.member,
            "supporting": list(self.supporting),
            "contradicting": list(self.contradicting),
            "zone": zone,
        }


def claim_map(answers: Sequence[tuple[str, str]], matcher: ClaimMatcher) -> list[Claim]:
    """Every member's claims (`answers`: (member, text)), each with the members whose
    claims support it (itself included) and those whose claims contradict it."""
    owners: list[str] = []
    texts: list[str] = []
    for member, text in answers:
        for claim in split_claims(text):
            owners.append(member)
            texts.append(claim)
    relations = matcher.relations(texts)
    claims: list[Claim] = []
    for i, text in enumerate(texts):
        support = {owners[i]}
        against: set[str] = set()
        for j, rel in enumerate(relations[i]):
            if owners[j] == owners[i]:
                continue
            if rel == "supports":
                support.add(owners[j])
            elif rel == "contradicts":
                against.add(owners[j])
        against -= support
        ordered = [m for m, _ in answers]
        claims.append(
            Claim(
                text,
                owners[i],
                tuple(m for m in ordered if m in support),
                tuple(m for m in ordered if m in against),
            )
        )
    return claims


def link_claims(
    text: str, answers: Sequence[tuple[str, str]], matcher: ClaimMatcher, owner: str
) -> list[Claim]:
    """The claims of `text` (an adjudicated answer, said by `owner`) linked back to the
    members whose claims support or contradict each."""
    mine = split_claims(text)
    theirs = [(m, c) for m, t in answers for c in split_claims(t)]
    texts = [*mine, *(c for _, c in theirs)]
    relations = matcher.relations(texts) if texts else []
    ordered = [m for m, _ in answers]
    out: list[Claim] = []
    for i, claim in enumerate(mine):
        support: set[str] = set()
        against: set[str] = set()
        for k, (member, _) in enumerate(theirs):
            rel = relations[i][len(mine) + k]
            if rel == "supports":
                support.add(member)
            elif rel == "contradicts":
                against.add(member)
        against -= support
        out.append(
            Claim(
                claim,
                owner,
                tuple(m for m in ordered if m in support),
                tuple(m for m in ordered if m in against),
            )
        )
    return out
