"""Where a specialist deployment's artifact is, and its serving settings, as a URL.

A deployment on the `specialist` adapter names its artifact folder as a `file:` URL;
the query sets the confidence threshold and the cost per call (the engine writes this
for `specialists:` entries; a hand-written deployment may use it too)::

    file:///home/me/.modelyard/specialists/support-intents?min_confidence=0.6&cost_per_call_usd=0

No NumPy here: the engine builds these at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from modelyard.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SpecialistSettings:
    """Where the artifact is, the confidence below which to escalate (None: the
    manifest's default), and what one call costs."""

    path: Path
    min_confidence: float | None = None
    cost_per_call_usd: Decimal = Decimal(0)
    # The out-of-scope score at which to escalate (None: the manifest's; 1: never).
    oos_threshold: float | None = None

    def to_url(self) -> str:
        query = f"cost_per_call_usd={self.cost_per_call_usd}"
        if self.min_confidence is not None:
            query += f"&min_confidence={self.min_confidence}"
        if self.oos_threshold is not None:
            query += f"&oos_threshold={self.oos_threshold}"
        return f"{self.path.resolve().as_uri()}?{query}"

    @classmethod
    def from_url(cls, url: str, deployment: str) -> SpecialistSettings:
        parts = urlsplit(url)
        if parts.scheme != "file" or not parts.path:
            raise ConfigError(
                f"deployments.{deployment}.base_url: a specialist deployment names its "
                f"artifact folder as a file: URL, got {url!r}"
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - {"min_confidence", "cost_per_call_usd", "oos_threshold"})
        if unknown:
            raise ConfigError(f"deployments.{deployment}.base_url: unknown setting {unknown[0]}")
        try:
            threshold = float(query["min_confidence"]) if "min_confidence" in query else None
            oos = float(query["oos_threshold"]) if "oos_threshold" in query else None
            cost = Decimal(query.get("cost_per_call_usd", "0"))
        except (ValueError, InvalidOperation):
            raise ConfigError(
                f"deployments.{deployment}.base_url: min_confidence and cost_per_call_usd "
                f"must be numbers ({url!r})"
            ) from None
        for key, value in (("min_confidence", threshold), ("oos_threshold", oos)):
            if value is not None and not 0 <= value <= 1:
                raise ConfigError(f"deployments.{deployment}: {key} must be in [0, 1]")
        if not cost.is_finite() or cost < 0:
            raise ConfigError(f"deployments.{deployment}: cost_per_call_usd must be >= 0")
        return cls(Path(unquote(parts.path)), threshold, cost, oos)
