"""An httpx transport on aiohttp: the upstream client's engine for `modelyard serve`.

The adapters keep speaking `httpx.AsyncClient` (so tests still inject
`httpx.MockTransport` / `ASGITransport`); only the transport under the gateway's
shared client changes. Profiling the gateway (issue 14) put httpx's default
transport at 20-25 % of its CPU: httpcore's pure-Python HTTP/1.1 state machine
(h11), anyio stream wrappers with a sniffio lookup per operation, and a pool that
checks every idle connection with a `poll()` on each request. aiohttp parses
responses in C, pools connections per host, and runs on asyncio directly.

Every aiohttp failure leaves as the httpx exception httpcore raises for the same
event, so `providers.http.translate_transport_errors` classifies them as before:
connect failures `ConnectError`/`ConnectTimeout`, a read that outlives its timeout
`ReadTimeout`, a connection dropped mid-response `RemoteProtocolError`/`ReadError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Final

import aiohttp
import httpx

# Seconds an idle upstream connection is kept (httpx's default is 5 s).
KEEPALIVE_S: Final = 30.0


@contextmanager
def _as_httpx(request: httpx.Request) -> Iterator[None]:
    """aiohttp's exceptions as the httpx ones for the same failure."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ClientResponseError as exc:  # a malformed response
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:  # reset, broken pipe, and the rest
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


class _Body(httpx.AsyncByteStream):
    """The response body, as aiohttp delivers it (a stream's chunks as they come)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A body read to its end returns the connection to the pool; one abandoned
        # mid-way (a cancelled stream) closes it.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """`httpx.AsyncBaseTransport` over one `aiohttp.ClientSession` (made on first
    use, on the running loop). `max_connections` bounds open connections in all."""

    def __init__(self, *, max_connections: int = 512, keepalive_s: float = KEEPALIVE_S) -> None:
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=self._keepalive_s
            )
            # httpx decodes content-encoding itself and sends its own headers.
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            )
            self._session = session
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        timeout = request.extensions.get("timeout", {})
        with _as_httpx(request):
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=await request.aread() or None,
                allow_redirects=False,
                compress=None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": _reason(response)},
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # Let the connector's transports finish closing before the loop goes.
            await asyncio.sleep(0)


def _reason(response: aiohttp.ClientResponse) -> bytes:
    return (response.reason or "").encode("latin-1", "replace")
