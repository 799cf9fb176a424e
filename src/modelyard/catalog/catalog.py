"""The catalog: every model card, its deployment, and which deployments are usable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelyard.catalog.cards import (
    ALL_DATA_CLASSES,
    PUBLIC_DATA_CLASSES,
    Deployment,
    EmbeddingSpec,
    LatencyPrior,
    ModelCard,
    QualityPrior,
)
from modelyard.catalog.prices import FREE, Prices, card_prices, library_prices
from modelyard.config import Config, DeploymentConfig, ModelConfig
from modelyard.errors import ConfigError

# genai-prices provider ids for our built-in adapters; OpenAI-compatible hosts
# (Groq, DeepSeek, ...) name theirs with `price_provider` in the deployment.
_DEFAULT_PRICE_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "0.0.0.0")


@dataclass(frozen=True, slots=True)
class Catalog:
    """Model cards by id, aliases, and why any deployment is unavailable."""

    cards: Mapping[str, ModelCard]
    aliases: Mapping[str, str]
    unavailable: Mapping[str, str]

    def resolve(self, name: str) -> ModelCard | None:
        """A model by id, alias, or upstream name when exactly one card has it."""
        if name in self.cards:
            return self.cards[name]
        if name in self.aliases:
            return self.cards[self.aliases[name]]
        matches = [c for c in self.cards.values() if c.upstream == name]
        return matches[0] if len(matches) == 1 else None

    def is_available(self, card: ModelCard) -> bool:
        return card.deployment.name not in self.unavailable

    def missing_keys(self) -> list[str]:
        """Environment variables whose absence disables a deployment."""
        return sorted(
            {
                c.deployment.api_key_env
                for c in self.cards.values()
                if c.deployment.api_key_env and c.deployment.name in self.unavailable
            }
        )


def build_catalog(config: Config, env: Mapping[str, str], source: str = "config") -> Catalog:
    """Resolve cards against deployments and prices; check which keys are set.

    A model on a remote deployment whose price neither its card nor genai-prices
    knows is a configuration error: routing by cost needs a cost.
    """
    deployments = {name: _deployment(name, d) for name, d in config.deployments.items()}
    cards: dict[str, ModelCard] = {}
    for model_id, m in config.models.items():
        dep_cfg = config.deployments[m.deployment]
        upstream = m.upstream or model_id.rsplit("/", 1)[-1]
        prices = _prices(m, upstream, dep_cfg)
        if prices is None:
            raise ConfigError(
                f"{source}: models.{model_id}.prices: genai-prices does not know '{upstream}' "
                f"at provider '{dep_cfg.price_provider or dep_cfg.adapter}'; state the prices "
                "in the card (input, output, cached_input in $ per million tokens)"
            )
        cards[model_id] = _card(model_id, m, upstream, deployments[m.deployment], prices)
    unavailable = {
        name: _missing(d.key_names())
        for name, d in config.deployments.items()
        if d.key_names() and d.key_from(env) is None
    }
    return Catalog(cards=cards, aliases=dict(config.aliases), unavailable=unavailable)


def _missing(names: list[str]) -> str:
    if len(names) == 1:
        return f"{names[0]} is not set"
    return f"none of {', '.join(names)} is set"


def _deployment(name: str, d: DeploymentConfig) -> Deployment:
    return Deployment(
        name=name,
        adapter=d.adapter,
        base_url=d.base_url,
        api_key_env=d.key_names()[0] if d.key_names() else None,
        region=d.region,
        private=d.private,
        headers=dict(d.headers),
        timeout_s=d.timeout_s,
    )


def _prices(m: ModelConfig, upstream: str, dep: DeploymentConfig) -> Prices | None:
    if m.prices is not None:
        return card_prices(m.prices.input, m.prices.output, m.prices.cached_input)
    provider = dep.price_provider or _DEFAULT_PRICE_PROVIDER.get(dep.adapter)
    is_local = any(host in dep.base_url for host in _LOCAL_HOSTS)
    if provider and not is_local:
        found = library_prices(upstream, provider)
        if found is not None:
            return found
    return FREE if is_local else None


def _card(
    model_id: str, m: ModelConfig, upstream: str, dep: Deployment, prices: Prices
) -> ModelCard:
    default_classes = ALL_DATA_CLASSES if dep.private else PUBLIC_DATA_CLASSES
    return ModelCard(
        id=model_id,
        deployment=dep,
        upstream=upstream,
        family=m.family,
        capabilities=frozenset(m.capabilities),
        context_window=m.context_window,
        max_output_tokens=m.max_output_tokens,
        prices=prices,
        latency=LatencyPrior(m.latency.ttft_ms, m.latency.output_tokens_per_s),
        quality=QualityPrior(m.quality.default, dict(m.quality.tasks)),
        data_classes=frozenset(m.data_classes) if m.data_classes else default_classes,
        task=m.task,
        embedding=None if m.embeddings is None else EmbeddingSpec(**m.embeddings.model_dump()),
    )
