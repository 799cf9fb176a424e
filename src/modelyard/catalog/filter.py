"""The capability filter: pure, and it says why it dropped each model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from modelyard.catalog.cards import EmbeddingSpec, ModelCard
from modelyard.catalog.catalog import Catalog
from modelyard.catalog.tokens import scale_for_family
from modelyard.types import EmbeddingNeeds, Requirements

# When a request states no output cap, reserve this much of the window for the answer.
DEFAULT_OUTPUT_RESERVE = 1024


@dataclass(frozen=True, slots=True)
class FilterResult:
    """Models that qualify, and for every other one the reason it does not."""

    kept: tuple[ModelCard, ...]
    rejected: tuple[tuple[str, str], ...]


def output_reserve(card: ModelCard, req: Requirements) -> int:
    """Output tokens to plan for: the caller's cap, else a modest default."""
    return req.max_output_tokens or min(DEFAULT_OUTPUT_RESERVE, card.max_output_tokens)


def unmet(card: ModelCard, req: Requirements) -> str | None:
    """Why `card` cannot serve `req` on capability grounds, or None if it can."""
    if (card.embedding is None) != (req.embedding is None):
        return (
            "an embeddings model (serves /v1/embeddings only)"
            if card.embedding is not None
            else "not an embeddings model"
        )
    if card.task is not None and req.task != card.task:
        asked = f"the request's task is '{req.task}'" if req.task else "the request names no task"
        return f"serves only task '{card.task}' ({asked})"
    missing = req.capabilities - card.capabilities
    if missing:
        return "lacks " + ", ".join(sorted(c.value for c in missing))
    if req.data_class not in card.data_classes:
        where = "a public deployment" if not card.deployment.private else "its card"
        return f"data class '{req.data_class.value}' not allowed on {where}"
    if card.embedding is not None and req.embedding is not None:
        return embedding_unmet(card, card.embedding, req.embedding)
    prompt = scale_for_family(req.prompt_tokens, card.family)
    if req.max_output_tokens is not None and req.max_output_tokens > card.max_output_tokens:
        return f"max_tokens {req.max_output_tokens} exceeds its max output {card.max_output_tokens}"
    if not card.fits(prompt, output_reserve(card, req)):
        return (
            f"context window {card.context_window} < ~{prompt} prompt + "
            f"{output_reserve(card, req)} output tokens"
        )
    return None


def embedding_unmet(card: ModelCard, spec: EmbeddingSpec, needs: EmbeddingNeeds) -> str | None:
    """Why an embeddings model cannot serve an embeddings request: the output size,
    token-id input, or an input longer than it reads."""
    if needs.dimensions is not None and not spec.supports(needs.dimensions):
        sizes = f"1-{spec.dimensions}" if spec.shortenable else str(spec.dimensions)
        return f"returns {sizes} dimensions, not {needs.dimensions}"
    if needs.token_ids and not spec.token_input:
        return "takes text only, not token ids"
    longest = scale_for_family(needs.longest_input_tokens, card.family)
    if longest > card.context_window:
        return f"reads at most {card.context_window} tokens per input, the longest has ~{longest}"
    return None


def unavailable_reason(
    card: ModelCard, catalog: Catalog, unhealthy: Mapping[str, str]
) -> str | None:
    """Why `card`'s deployment cannot be used now (no key, open circuit, 429 cool-down)."""
    name = card.deployment.name
    if name in catalog.unavailable:
        return f"deployment '{name}' disabled: {catalog.unavailable[name]}"
    if name in unhealthy:
        return f"deployment '{name}' skipped: {unhealthy[name]}"
    return None


def filter_candidates(
    cards: Iterable[ModelCard],
    req: Requirements,
    catalog: Catalog,
    unhealthy: Mapping[str, str] | None = None,
) -> FilterResult:
    """Keep the cards that meet `req` and are usable now; give every other a reason.

    `unhealthy` is the health snapshot (deployment → reason) taken before planning.
    """
    kept: list[ModelCard] = []
    rejected: list[tuple[str, str]] = []
    for card in cards:
        reason = unmet(card, req) or unavailable_reason(card, catalog, unhealthy or {})
        if reason is None:
            kept.append(card)
        else:
            rejected.append((card.id, reason))
    return FilterResult(tuple(kept), tuple(rejected))
