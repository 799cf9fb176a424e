"""The Gemini API adapter: `POST {base_url}/models/{model}:generateContent`, JSON, or
`:streamGenerateContent?alt=sse`, server-sent events.

`base_url` includes the API version, e.g. `https://generativelanguage.googleapis.com/v1beta`.
The key goes in the `x-goog-api-key` header, never the URL (URLs end up in proxy
and access logs). Translations are in `gemini_wire` (request), `gemini_response`
(answer, usage, errors) and `gemini_stream` (SSE), all pure; this module only does
I/O and sends every failure through the one error boundary in `providers.http`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx

from modelyard.errors import ProviderError
from modelyard.providers.base import DeploymentSettings
from modelyard.providers.gemini_response import error_from_body, parse_response
from modelyard.providers.gemini_stream import StreamTranslator
from modelyard.providers.gemini_wire import build_body
from modelyard.providers.http import json_payload, redact, translate_transport_errors
from modelyard.providers.sse import sse_events
from modelyard.types import ChatRequest, Chunk, Completion


class GeminiAdapter:
    """A `ChatProvider` for one Gemini API deployment (Google AI Studio's
    generativelanguage.googleapis.com or a compatible gateway)."""

    # Calls go over HTTP: an interrupted one costs money only once a request left.
    remote = True

    def __init__(self, settings: DeploymentSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client
        self._base = settings.base_url.rstrip("/")

    def _url(self, model: str, method: str) -> str:
        # A model id is one path segment; `models/` prefixes are accepted as Google writes them.
        name = quote(model.removeprefix("models/"), safe="-._")
        return f"{self._base}/models/{name}:{method}"

    async def complete(self, request: ChatRequest, upstream_model: str) -> Completion:
        """Send `request` and return the whole answer; raises `ProviderError` subclasses."""
        body = build_body(request)
        name = self._settings.name
        with translate_transport_errors(name):
            response = await self._client.post(
                self._url(upstream_model, "generateContent"),
                json=body,
                headers=self._headers(),
                timeout=self._settings.timeout,
            )
        if response.is_error:
            raise self._status_error(response)
        payload = json_payload(response, name, self._redact(response.text))
        return parse_response(payload, upstream_model, name)

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncIterator[Chunk]:
        """Stream the answer as `Chunk`s; the last one carries finish reason and usage.

        Raises `ProviderError` subclasses, also mid-stream (an error event, a safety
        stop after partial output, a broken connection, a stream cut before its
        finish reason).
        """
        body = build_body(request)
        translator = StreamTranslator(provider=self._settings.name)
        with translate_transport_errors(self._settings.name):
            async with self._client.stream(
                "POST",
                self._url(upstream_model, "streamGenerateContent"),
                params={"alt": "sse"},
                json=body,
                headers=self._headers(),
                timeout=self._settings.timeout,
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise self._status_error(response)
                async for _, data in sse_events(response.aiter_lines()):
                    for chunk in translator.feed(self._redact(data)):
                        yield chunk
        closing, error = translator.end()
        for chunk in closing:
            yield chunk
        if error is not None:
            raise error

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self._settings.api_key:
            headers["x-goog-api-key"] = self._settings.api_key
        headers.update(self._settings.extra_headers)
        return headers

    def _status_error(self, response: httpx.Response) -> ProviderError:
        # Redact the whole body first: the error keeps an excerpt of it.
        return error_from_body(
            response.status_code,
            self._redact(response.text),
            self._settings.name,
            response.headers,
        )

    def _redact(self, text: str) -> str:
        # Upstream text goes into exception messages and logs; the key must never.
        return redact(text, self._settings.api_key)
