"""The aiohttp transport under the gateway's httpx client, against real sockets: the
same answers as httpx's own transport, and failures as the httpx exceptions that
`translate_transport_errors` classifies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from modelyard.errors import ProviderConnectionError, ProviderTimeoutError
from modelyard.providers.aiohttp_transport import AiohttpTransport
from modelyard.providers.http import translate_transport_errors

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=AiohttpTransport()) as c:
        yield c


async def test_json_answer_headers_and_body_round_trip(client: httpx.AsyncClient) -> None:
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # keep-alive: several requests on one connection
            try:
                seen.append(await _read_request(reader))
            except asyncio.IncompleteReadError:
                writer.close()
                return
            body = b'{"ok": true}'
            writer.write(
                b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                b"x-upstream: yes\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    server, url = await _serve(answer)
    async with server:
        first = await client.post(f"{url}/v1/x", json={"q": 1}, headers={"x-key": "k"})
        second = await client.post(f"{url}/v1/x", json={"q": 2})
    assert first.status_code == 201
    assert first.reason_phrase == "Created"
    assert first.headers["x-upstream"] == "yes"
    assert first.json() == {"ok": True}
    assert second.json() == {"ok": True}
    request = seen[0].decode()
    assert request.startswith("POST /v1/x HTTP/1.1")
    assert "x-key: k" in request.lower()
    assert json.loads(request.split("\r\n\r\n", 1)[1]) == {"q": 1}


async def test_a_stream_arrives_chunk_by_chunk(client: httpx.AsyncClient) -> None:
    release = asyncio.Event()

    async def sse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        first = b"data: one\n\n"
        writer.write(b"%x\r\n%s\r\n" % (len(first), first))
        await writer.drain()
        await release.wait()
        last = b"data: two\n\n"
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(last), last))
        await writer.drain()
        writer.close()

    server, url = await _serve(sse)
    async with server, client.stream("POST", f"{url}/s", json={}) as response:
        lines = response.aiter_lines()
        # The first event is delivered before the server sends the second.
        assert await anext(lines) == "data: one"
        release.set()
        rest = [line async for line in lines]
    assert "data: two" in rest


async def test_connection_refused_is_a_connect_error(client: httpx.AsyncClient) -> None:
    server, url = await _serve(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    with pytest.raises(httpx.ConnectError):
        await client.post(f"{url}/x", json={})
    with pytest.raises(ProviderConnectionError), translate_transport_errors("up"):
        await client.post(f"{url}/x", json={})


async def test_a_silent_upstream_is_a_read_timeout(client: httpx.AsyncClient) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    server, url = await _serve(silent)
    async with server:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{url}/x", json={}, timeout=httpx.Timeout(5, read=0.2))
        with pytest.raises(ProviderTimeoutError), translate_transport_errors("up"):
            await client.post(f"{url}/x", json={}, timeout=httpx.Timeout(5, read=0.2))


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # closed without a response
        b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"trunc',  # body cut short
        b"NOT HTTP AT ALL\r\n\r\n",  # not a response
    ],
    ids=["no-response", "truncated-body", "garbage"],
)
async def test_a_broken_response_is_a_connection_error(
    client: httpx.AsyncClient, reply: bytes
) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(reply)
        await writer.drain()
        writer.close()

    server, url = await _serve(broken)
    async with server:
        with pytest.raises(ProviderConnectionError), translate_transport_errors("up"):
            response = await client.post(f"{url}/x", json={})
            response.json()


async def test_closing_the_client_closes_the_session() -> None:
    transport = AiohttpTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        server, url = await _serve(lambda r, w: asyncio.sleep(0))
        server.close()
        with pytest.raises(httpx.ConnectError):
            await client.get(url)
    assert transport._session is not None
    assert transport._session.closed
