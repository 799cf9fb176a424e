"""Prices per million tokens, and turning reported usage into dollars.

Prices come from the maintained `genai-prices` library when it knows the model,
unless the model card overrides them: the card wins, and `Prices.source` says
which one was used so `modelyard models` can show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from modelyard.types import Money, Usage

PriceSource = Literal["card", "genai-prices", "free"]
MILLION = Decimal(1_000_000)
NANO = Decimal("0.000000001")

# genai-prices quotes tiered prices (e.g. Claude above 200k prompt tokens); the
# list price a catalog shows is the base tier, read off a small probe request.
_PROBE_TOKENS = 1000


@dataclass(frozen=True, slots=True)
class Prices:
    """US dollars per million tokens."""

    input: Money
    output: Money
    cached_input: Money
    source: PriceSource
    provider_ref: str | None = None

    def cost(self, usage: Usage) -> Money:
        """Dollars for `usage`, exact to the nano-dollar. Cached input tokens are a
        subset of `input_tokens` and are charged at the cached rate."""
        if self.source == "genai-prices" and self.provider_ref is not None:
            tiered = _genai_cost(usage, self.provider_ref)
            if tiered is not None:
                return tiered
        uncached = max(usage.input_tokens - usage.cached_input_tokens, 0)
        total = (
            uncached * self.input
            + usage.cached_input_tokens * self.cached_input
            + usage.output_tokens * self.output
        ) / MILLION
        return total.quantize(NANO, rounding=ROUND_HALF_EVEN)

    def estimate(self, input_tokens: int, output_tokens: int) -> Money:
        """A pre-call estimate at list price (no cache discount assumed)."""
        return (input_tokens * self.input + output_tokens * self.output) / MILLION


FREE = Prices(Decimal(0), Decimal(0), Decimal(0), "free")


def card_prices(input: Decimal, output: Decimal, cached_input: Decimal | None) -> Prices:
    """Prices a model card states itself."""
    return Prices(input, output, cached_input if cached_input is not None else input, "card")


def library_prices(model_ref: str, provider_id: str | None) -> Prices | None:
    """Base-tier list prices from genai-prices, or None when it does not know the model."""
    try:
        from genai_prices import Usage as GPUsage
        from genai_prices import calc_price
    except ImportError:  # pragma: no cover - genai-prices is a core dependency
        return None
    try:
        plain = calc_price(
            GPUsage(input_tokens=_PROBE_TOKENS, output_tokens=_PROBE_TOKENS),
            model_ref,
            provider_id=provider_id,
        )
        cached = calc_price(
            GPUsage(input_tokens=_PROBE_TOKENS, cache_read_tokens=_PROBE_TOKENS),
            model_ref,
            provider_id=provider_id,
        )
    except (LookupError, ValueError):
        return None
    scale = MILLION / _PROBE_TOKENS
    return Prices(
        input=_plain(Decimal(plain.input_price) * scale),
        output=_plain(Decimal(plain.output_price) * scale),
        cached_input=_plain(Decimal(cached.input_price) * scale),
        source="genai-prices",
        provider_ref=f"{provider_id or ''}:{model_ref}",
    )


def _plain(value: Decimal) -> Decimal:
    """Drop trailing zeros without scientific notation (10, not 1E+1)."""
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


def _genai_cost(usage: Usage, provider_ref: str) -> Money | None:
    """Tier-aware cost from genai-prices for the actual usage."""
    from genai_prices import Usage as GPUsage
    from genai_prices import calc_price

    provider_id, _, model_ref = provider_ref.partition(":")
    try:
        calc = calc_price(
            GPUsage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cached_input_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            ),
            model_ref,
            provider_id=provider_id or None,
        )
    except (LookupError, ValueError):
        return None
    return Decimal(calc.total_price).quantize(NANO, rounding=ROUND_HALF_EVEN)
