"""The OpenAI chat-completions adapter, for OpenAI and every OpenAI-compatible server.

vLLM, Ollama, llama.cpp's server, Groq, Together, OpenRouter, DeepSeek, Mistral and
Gemini's OpenAI endpoint all speak this wire format; only `base_url` (which includes
the version prefix, e.g. `https://api.openai.com/v1`) and the key differ. The pure
transforms live in `modelyard.providers.openai_wire`; this module does the I/O.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx

from modelyard.embed.request import EmbeddingInputs, EmbeddingRequest
from modelyard.embed.result import EmbeddingResult
from modelyard.errors import ProviderError, ProviderResponseError
from modelyard.providers.base import DeploymentSettings
from modelyard.providers.http import error_for_status, redact, translate_transport_errors
from modelyard.providers.openai_embed import build_embeddings_body, parse_embeddings
from modelyard.providers.openai_wire import (
    build_body,
    build_headers,
    error_message,
    excerpt,
    iter_sse_data,
    parse_chunk,
    parse_completion,
)
from modelyard.types import ChatRequest, Chunk, Completion

__all__ = ["OpenAIChatAdapter"]

_DONE = "[DONE]"


class OpenAIChatAdapter:
    """Answers chat requests through `POST {base_url}/chat/completions`, and
    embeddings requests through `POST {base_url}/embeddings`.

    Every failure surfaces as a `modelyard.errors.ProviderError` subclass, and the
    deployment's key is scrubbed from every message, even one an upstream echoed.
    """

    # Calls go over HTTP: an interrupted one costs money only once a request left.
    remote = True

    def __init__(self, settings: DeploymentSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client
        self._url = f"{settings.base_url.rstrip('/')}/chat/completions"
        self._embeddings_url = f"{settings.base_url.rstrip('/')}/embeddings"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._settings.name!r}, url={self._url!r})"

    @property
    def name(self) -> str:
        """The deployment's name, used in error messages and the ledger."""
        return self._settings.name

    async def complete(self, request: ChatRequest, upstream_model: str) -> Completion:
        """Send `request` to `upstream_model` and return the whole answer."""
        body = build_body(request, upstream_model, stream=False)
        with self._scrubbed(), translate_transport_errors(self.name):
            response = await self._client.post(
                self._url,
                json=body,
                headers=build_headers(self._settings),
                timeout=self._settings.timeout,
            )
            if not response.is_success:
                raise self._status_error(response)
            return parse_completion(self._json(response), provider=self.name)

    async def embed(
        self,
        request: EmbeddingRequest,
        inputs: EmbeddingInputs,
        upstream_model: str,
        *,
        dimensions: int | None,
    ) -> EmbeddingResult:
        """Embed `inputs` with `upstream_model` (see `EmbeddingsProvider`)."""
        body = build_embeddings_body(request, upstream_model, dimensions=dimensions)
        with self._scrubbed(), translate_transport_errors(self.name):
            response = await self._client.post(
                self._embeddings_url,
                json=body,
                headers=build_headers(self._settings),
                timeout=self._settings.timeout,
            )
            if not response.is_success:
                raise self._status_error(response)
            return parse_embeddings(self._json(response), expected=len(inputs), provider=self.name)

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncIterator[Chunk]:
        """Stream the answer as `Chunk`s; the last one carries `usage`.

        Raises `ProviderResponseError` when the stream ends before `[DONE]`, so a
        truncated answer is never mistaken for a complete one.
        """
        body = build_body(request, upstream_model, stream=True)
        with self._scrubbed(), translate_transport_errors(self.name):
            async with self._client.stream(
                "POST",
                self._url,
                json=body,
                headers=build_headers(self._settings),
                timeout=self._settings.timeout,
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise self._status_error(response)
                async for chunk in self._chunks(response):
                    yield chunk

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[Chunk]:
        called_tools = False
        async for data in iter_sse_data(response.aiter_lines()):
            if data.strip() == _DONE:
                return
            chunk = parse_chunk(self._event(data), provider=self.name)
            if chunk is None:
                continue
            called_tools = called_tools or bool(chunk.tool_calls)
            if called_tools and chunk.finish_reason == "stop":
                # Same normalisation as `settle_finish_reason` for whole answers.
                chunk = replace(chunk, finish_reason="tool_calls")
            yield chunk
        raise ProviderResponseError(f"{self.name}: stream ended before [DONE]", provider=self.name)

    def _event(self, data: str) -> dict[str, Any]:
        data = redact(data, self._settings.api_key)
        try:
            event = json.loads(data)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            raise ProviderResponseError(
                f"{self.name}: stream event is not a JSON object: {excerpt(data)!r}",
                provider=self.name,
            )
        return event

    def _json(self, response: httpx.Response) -> Any:
        # Redacted before parsing, so no excerpt of it downstream can cut a key.
        text = redact(response.text, self._settings.api_key)
        try:
            return json.loads(text)
        except ValueError:
            raise ProviderResponseError(
                f"{self.name}: response body is not JSON "
                f"(status {response.status_code}): {excerpt(text)!r}",
                provider=self.name,
                upstream_status=response.status_code,
            ) from None

    def _status_error(self, response: httpx.Response) -> ProviderError:
        return error_for_status(
            response.status_code,
            error_message(redact(response.text, self._settings.api_key)),
            provider=self.name,
            headers=response.headers,
        )

    @contextmanager
    def _scrubbed(self) -> Iterator[None]:
        # Upstreams echo keys in 401 messages ("Incorrect API key provided: sk-..."),
        # and compatible servers do not always mask them as OpenAI does.
        key = self._settings.api_key
        try:
            yield
        except ProviderError as exc:
            if key and key in exc.message:
                exc.message = exc.message.replace(key, "[redacted]")
                exc.args = (exc.message, *exc.args[1:])
            raise
