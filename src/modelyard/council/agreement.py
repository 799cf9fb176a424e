"""How far a council's members agree: a vote on extracted final answers, else claims.

Each answer is reduced to a key as the cascades' agreement verifier does: the
replayed `parsed_answer` when it carries one, else the `auto` extractor (choice
letter, JSON `answer` field, number). When any member's answer has a key, members
vote: the score is the winning key's share of the members that answered, and an
answer with no key agrees with nobody. Free text (no key anywhere) is split into
claims and matched across members: a claim is in the agreement zone when enough
members support it (at least two, and `min_agreement` of the members) and nobody
contradicts it; the score is the share of claims in the agreement zone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from modelyard import plugins
from modelyard.council.claims import Claim, ClaimMatcher, claim_map
from modelyard.verifiers.extract import ExtractOptions, auto, normalise_parsed

Zone = Literal["agreed", "disputed"]
Method = Literal["vote", "claims"]


@dataclass(frozen=True, slots=True)
class Ballot:
    """One member's answer: who, what it said, and its extracted final answer."""

    model_id: str
    text: str
    key: str | None


@dataclass(frozen=True, slots=True)
class Agreement:
    """The members' agreement: `winner` indexes the best-supported ballot."""

    method: Method
    score: float
    zone: Zone
    winner: int
    votes: dict[str, tuple[str, ...]]
    claims: tuple[Claim, ...]
    reason: str


def key_of(text: str, parsed: str | None, extract: str = "auto") -> str | None:
    """The comparable final answer: a parsed answer as given, else the extractor's
    key (`text`: none, so free text is compared by its claims)."""
    if parsed is not None:
        return normalise_parsed(parsed)
    if extract == "text":
        return None
    if extract == "auto":
        found = auto(text)
        return found.split(":", 1)[1] if found is not None else None
    extractor = plugins.load(plugins.EXTRACTORS, extract)
    try:
        key: str | None = extractor(text, ExtractOptions())
    except Exception:  # a plugin extractor's bug: this answer agrees with nobody
        return None
    return key


def meets(score: float, min_agreement: float) -> bool:
    # Two decimals: `0.67` means two of three, not "more than two thirds".
    return round(score, 2) >= min_agreement


def claim_zone(claim: Claim, members: int, min_agreement: float, *, voted: bool = False) -> Zone:
    """Agreed: enough supporters (two at least, `min_agreement` of the members) and,
    for a free-text claim, nobody contradicting it. A voted final answer is decided
    by its share alone (every other key contradicts it by definition)."""
    enough = len(claim.supporting) >= 2 and meets(len(claim.supporting) / members, min_agreement)
    return "agreed" if enough and (voted or not claim.contradicting) else "disputed"


def assess(ballots: Sequence[Ballot], min_agreement: float, matcher: ClaimMatcher) -> Agreement:
    """Vote when any ballot has a key, else match claims."""
    if any(b.key is not None for b in ballots):
        return _vote(ballots, min_agreement)
    return _claims(ballots, min_agreement, matcher)


def _vote(ballots: Sequence[Ballot], min_agreement: float) -> Agreement:
    tally = Counter(b.key for b in ballots if b.key is not None)
    # Ties go to the key the earliest member gave (members are in plan order).
    order = [b.key for b in ballots if b.key is not None]
    best = max(tally, key=lambda k: (tally[k], -order.index(k)))
    winner = next(i for i, b in enumerate(ballots) if b.key == best)
    votes = {k: tuple(b.model_id for b in ballots if b.key == k) for k in tally}
    score = tally[best] / len(ballots)
    claims = tuple(
        Claim(
            f"final answer: {key}",
            members[0],
            members,
            tuple(b.model_id for b in ballots if b.key is not None and b.key != key),
        )
        for key, members in votes.items()
    )
    blank = [b.model_id for b in ballots if b.key is None]
    reason = f"{tally[best]} of {len(ballots)} members answer '{best}'"
    if blank:
        reason += f"; no extractable final answer from {', '.join(blank)}"
    zone: Zone = "agreed" if meets(score, min_agreement) else "disputed"
    return Agreement("vote", score, zone, winner, votes, claims, reason)


def _claims(ballots: Sequence[Ballot], min_agreement: float, matcher: ClaimMatcher) -> Agreement:
    claims = claim_map([(b.model_id, b.text) for b in ballots], matcher)
    n = len(ballots)
    agreed = [c for c in claims if claim_zone(c, n, min_agreement) == "agreed"]
    score = len(agreed) / len(claims) if claims else 0.0

    def support(i: int) -> tuple[int, float]:
        mine = [c for c in claims if c.member == ballots[i].model_id]
        good = sum(1 for c in mine if c in agreed)
        return good, good / len(mine) if mine else 0.0

    winner = max(range(n), key=lambda i: (*support(i), -i))
    reason = (
        f"{len(agreed)} of {len(claims)} claims supported by enough members "
        f"(matched by {matcher.name})"
        if claims
        else "no claims in the members' answers"
    )
    zone: Zone = "agreed" if claims and meets(score, min_agreement) else "disputed"
    return Agreement("claims", score, zone, winner, {}, tuple(claims), reason)
