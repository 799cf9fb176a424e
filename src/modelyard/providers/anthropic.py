"""The Anthropic Messages API adapter: `POST {base_url}/v1/messages`, JSON or SSE.

The request and response translations live in `anthropic_wire` and the stream
translation in `anthropic_stream` (both pure); this module only does I/O and sends
every failure through the one error boundary in `modelyard.providers.http`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from modelyard.errors import ProviderError, ProviderResponseError
from modelyard.providers.anthropic_stream import StreamTranslator
from modelyard.providers.anthropic_wire import (
    build_body,
    error_message,
    json_schema_tool,
    parse_message,
)
from modelyard.providers.base import DeploymentSettings
from modelyard.providers.http import (
    error_for_status,
    json_payload,
    redact,
    translate_transport_errors,
)
from modelyard.providers.sse import sse_events
from modelyard.types import ChatRequest, Chunk, Completion

ANTHROPIC_VERSION = "2023-06-01"
"""Pinned API version. Newer versions reject `temperature`/`top_p` outright, which
the OpenAI-shaped requests modelyard accepts routinely carry."""


class AnthropicMessagesAdapter:
    """A `ChatProvider` for one Anthropic Messages deployment (api.anthropic.com or a
    compatible gateway). `settings.base_url` has no `/v1`, as in Anthropic's SDKs."""

    # Calls go over HTTP: an interrupted one costs money only once a request left.
    remote = True

    def __init__(self, settings: DeploymentSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client
        self._url = f"{settings.base_url.rstrip('/')}/v1/messages"

    async def complete(self, request: ChatRequest, upstream_model: str) -> Completion:
        """Send `request` and return the whole answer; raises `ProviderError` subclasses."""
        body = build_body(request, upstream_model, stream=False)
        name = self._settings.name
        with translate_transport_errors(name):
            response = await self._client.post(
                self._url, json=body, headers=self._headers(), timeout=self._settings.timeout
            )
        if response.is_error:
            raise self._status_error(response)
        payload = json_payload(response, name, self._redact(response.text))
        return parse_message(payload, json_tool=json_schema_tool(request), provider=name)

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncIterator[Chunk]:
        """Stream the answer as `Chunk`s; the last one carries finish reason and usage.

        Raises `ProviderError` subclasses, also mid-stream (an `error` event, a broken
        connection, or a stream that ends before `message_stop`).
        """
        body = build_body(request, upstream_model, stream=True)
        name = self._settings.name
        translator = StreamTranslator(json_tool=json_schema_tool(request), provider=name)
        with translate_transport_errors(name):
            async with self._client.stream(
                "POST",
                self._url,
                json=body,
                headers=self._headers(),
                timeout=self._settings.timeout,
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise self._status_error(response)
                async for event, data in sse_events(response.aiter_lines()):
                    # Every event, so no excerpt of one in an error can cut a key.
                    data = self._redact(data)
                    chunk = translator.feed(event, data)
                    if chunk is not None:
                        yield chunk
                    if translator.finished:
                        return
        raise ProviderResponseError(
            f"{name}: stream ended before message_stop", provider=name, upstream_status=200
        )

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
        if self._settings.api_key:
            headers["x-api-key"] = self._settings.api_key
        # Last, so a deployment can add `anthropic-beta` or pin another version.
        headers.update(self._settings.extra_headers)
        return headers

    def _status_error(self, response: httpx.Response) -> ProviderError:
        # Redact the whole body first: `error_message` cuts plain text to 500 chars.
        text = self._redact(response.text)
        try:
            payload: object = json.loads(text)
        except ValueError:
            payload = text
        message, kind = error_message(payload)
        return error_for_status(
            response.status_code,
            self._redact(message) or f"HTTP {response.status_code} without an error message",
            provider=self._settings.name,
            headers=response.headers,
            overloaded=kind == "overloaded_error",
        )

    def _redact(self, text: str) -> str:
        # Upstream text goes into exception messages and logs; the key must never.
        return redact(text, self._settings.api_key)
