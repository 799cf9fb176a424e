"""Oversized headers through a real uvicorn server configured as `modelyard serve` is."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from modelyard.server.app import create_app
from modelyard.server.serving import H11_MAX_EVENT_BYTES

pytestmark = pytest.mark.slow


@pytest.fixture
def served(engine: object) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(engine),  # type: ignore[arg-type]
        log_level="warning",
        lifespan="off",
        h11_max_incomplete_event_size=H11_MAX_EVENT_BYTES,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.mark.parametrize("size", [100_000, 1_000_000])
def test_oversized_headers_get_an_openai_shaped_431(served: str, size: int) -> None:
    # Past h11's default 16 KiB buffer a request of this size may get uvicorn's plain
    # 400 or a reset, depending on how the bytes arrive; the raised buffer avoids that.
    response = httpx.post(
        f"{served}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers={"x-padding": "a" * size},
        timeout=10,
    )
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "request_header_fields_too_large"
