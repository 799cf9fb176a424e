"""The one boundary where HTTP-level failures become modelyard errors.

Adapters call `raise_for_upstream_status` on every response and wrap their I/O in
`translate_transport_errors`; each adapter only supplies how to read its API's
error message out of a body.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from modelyard.errors import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    UpstreamRequestError,
)


def redact(text: str, secret: str | None) -> str:
    """`text` with `secret` replaced by `[redacted]`. Call it on the whole upstream
    text *before* cutting it to an excerpt: cut first, and a key that straddles the
    cut survives as a prefix no exact match can find."""
    return text.replace(secret, "[redacted]") if secret and secret in text else text


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI), `retry-after` seconds or HTTP-date."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    headers: httpx.Headers | None = None,
    overloaded: bool = False,
) -> ProviderError:
    """Map an upstream HTTP status (and body hint) to the error class the executor acts on."""
    text = f"{provider}: {message}" if provider else message
    if status == 429:
        retry_after = parse_retry_after(headers) if headers is not None else None
        return ProviderRateLimitError(
            text, retry_after=retry_after, provider=provider, upstream_status=status
        )
    if status == 529 or overloaded:
        return ProviderOverloadedError(text, provider=provider, upstream_status=status)
    if status in (401, 403):
        return ProviderAuthError(text, provider=provider, upstream_status=status)
    if status in (408,):
        return ProviderTimeoutError(text, provider=provider, upstream_status=status)
    if 400 <= status < 500:
        return UpstreamRequestError(message, upstream_status=status, provider=provider)
    return ProviderServerError(text, provider=provider, upstream_status=status)


@contextmanager
def translate_transport_errors(provider: str) -> Iterator[None]:
    """Turn httpx's transport exceptions into retryable provider errors, keeping the cause."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ProviderTimeoutError(
            f"{provider}: upstream timed out ({type(exc).__name__})", provider=provider
        ) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise ProviderConnectionError(
            f"{provider}: connection broke mid-response ({type(exc).__name__})", provider=provider
        ) from exc
    except httpx.TransportError as exc:
        raise ProviderConnectionError(
            f"{provider}: could not reach upstream ({type(exc).__name__})", provider=provider
        ) from exc


def json_payload(response: httpx.Response, provider: str, text: str) -> Any:
    """The answer's JSON (`text`: its body, already redacted); a body that is not
    JSON is the provider's fault, a retryable `ProviderResponseError`."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProviderResponseError(
            f"{provider}: response body is not JSON",
            provider=provider,
            upstream_status=response.status_code,
        ) from exc
