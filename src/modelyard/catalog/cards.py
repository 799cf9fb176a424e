"""Model cards and deployments as the router sees them (resolved from config)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelyard.catalog.prices import Prices
from modelyard.types import Capability, DataClass

PUBLIC_DATA_CLASSES = frozenset({DataClass.PUBLIC, DataClass.INTERNAL})
ALL_DATA_CLASSES = frozenset(DataClass)


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where models are served. `api_key_env` names the variable; the key itself is
    resolved once at start-up into `DeploymentSettings` and never kept here."""

    name: str
    adapter: str
    base_url: str
    api_key_env: str | None
    region: str | None
    private: bool
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 600.0


@dataclass(frozen=True, slots=True)
class LatencyPrior:
    """Expected time to first token and output speed, before any measurement."""

    ttft_ms: float
    output_tokens_per_s: float

    def expected_ms(self, output_tokens: int) -> float:
        return self.ttft_ms + 1000.0 * output_tokens / self.output_tokens_per_s


@dataclass(frozen=True, slots=True)
class QualityPrior:
    """Prior probability (0..1) that the model answers well, overall and per task."""

    default: float
    tasks: Mapping[str, float] = field(default_factory=dict)

    def for_task(self, task: str | None) -> float:
        return self.tasks.get(task, self.default) if task else self.default


@dataclass(frozen=True, slots=True)
class EmbeddingSpec:
    """An embeddings model's output: `dimensions` (its native vector size), whether
    it can return shorter vectors on request (`shortenable`: OpenAI's
    text-embedding-3 models take any `dimensions` from 1 to the native size), and
    whether it accepts token ids as input (`token_input`) as well as text."""

    dimensions: int
    shortenable: bool = False
    token_input: bool = False

    def supports(self, dimensions: int) -> bool:
        """Whether the model can return vectors of exactly `dimensions` numbers."""
        if self.shortenable:
            return 1 <= dimensions <= self.dimensions
        return dimensions == self.dimensions


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What a model can do, where it runs and what it costs."""

    id: str
    deployment: Deployment
    upstream: str
    family: str
    capabilities: frozenset[Capability]
    context_window: int
    max_output_tokens: int
    prices: Prices
    latency: LatencyPrior
    quality: QualityPrior
    data_classes: frozenset[DataClass]
    # A specialist serves only requests that declare its task; None serves any task.
    task: str | None = None
    # Set for an embeddings model (it serves `/v1/embeddings` only): then
    # `context_window` is the most tokens of one input.
    embedding: EmbeddingSpec | None = None

    def fits(self, prompt_tokens: int, output_tokens: int) -> bool:
        return prompt_tokens + output_tokens <= self.context_window
