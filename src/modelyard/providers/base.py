"""The provider protocol: what the executor needs from any model backend.

A `ChatProvider` is one deployment's way of answering a `ChatRequest`: a wire
adapter bound to a base URL, a key and a shared `httpx.AsyncClient`, or a double
(replay, function) in tests and evaluation. Adapters are constructed by the
registry in `modelyard.plugins` from a `DeploymentSettings`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import httpx

from modelyard.types import ChatRequest, Chunk, Completion


@dataclass(frozen=True, slots=True)
class DeploymentSettings:
    """What an adapter needs to reach one deployment. `api_key` is resolved from the
    environment at start-up and never logged, stored or put in an error."""

    name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0

    @property
    def timeout(self) -> httpx.Timeout:
        """Read/write/pool bounded by `timeout_s`; connecting fails fast on its own limit,
        so a dead host is failed over in seconds, not minutes."""
        return httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)


@runtime_checkable
class ChatProvider(Protocol):
    """Answers chat requests for one deployment."""

    async def complete(self, request: ChatRequest, upstream_model: str) -> Completion:
        """Send `request` to `upstream_model` and return the whole answer.

        Raises a `modelyard.errors.ProviderError` subclass on any failure.
        """
        ...

    def stream(self, request: ChatRequest, upstream_model: str) -> AsyncIterator[Chunk]:
        """Stream the answer as `Chunk`s; the last one carries `usage` when the
        upstream reports it. Raises `ProviderError` subclasses, possibly mid-stream."""
        ...


class AdapterFactory(Protocol):
    """How the registry builds an adapter: a class whose constructor takes these."""

    def __call__(self, settings: DeploymentSettings, client: httpx.AsyncClient) -> ChatProvider: ...
