"""An open-loop, fixed-rate HTTP/1.1 load generator on raw asyncio protocols.

Open loop: request i is *scheduled* at t0 + i/rate whatever happened to earlier
ones, and its latency counts from that scheduled time, so a stalled server is
charged for the queue it causes (no coordinated omission). Each tick sends the
same request to both targets (the fake upstream directly, and the gateway in
front of it), alternating which goes first, so the two see the same moment of
the machine and `gateway - direct` is what the gateway adds.

Plain protocols, no HTTP library: the generator's own cost per request is tens of
microseconds, and it shares a core with the fake upstream, not with the gateway.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

BODY = json.dumps(
    {
        "model": "bench-model",
        "messages": [{"role": "user", "content": "Say ok."}],
        "max_tokens": 16,
    }
).encode()


def request_bytes(host: str, port: int, path: str, extra_headers: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer sk-bench\r\n{extra_headers}content-length: {len(BODY)}\r\n\r\n"
    )
    return head.encode() + BODY


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        length = 0
        at = head.find(b"content-length:")
        if at >= 0:
            length = int(head[at + 15 :].split(b"\r\n", 1)[0])
        if len(self.buf) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buf[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    async def send(self, payload: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


class Target:
    """A host:port and the request sent to it, with a pool of idle connections."""

    def __init__(self, name: str, port: int, path: str = "/v1/chat/completions") -> None:
        self.name = name
        self.port = port
        self.payload = request_bytes("127.0.0.1", port, path)
        self.idle: list[_Conn] = []
        self.opened = 0
        # Requests waiting for an answer; past `MAX_IN_FLIGHT` the generator drops
        # new ones (counted) rather than pile thousands of sockets on a stalled target.
        self.in_flight = 0

    async def call(self) -> int:
        conn = None
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                break
            conn = None
        if conn is None:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(_Conn, "127.0.0.1", self.port)
            self.opened += 1
        try:
            status = await conn.send(self.payload)
        except BaseException:
            # Abandoned (a phase's end) or broken: this connection's reply, if any,
            # must not be read as the next request's.
            if conn.transport is not None:
                conn.transport.close()
            raise
        self.idle.append(conn)
        return status

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()


@dataclass
class Samples:
    """Latencies (ms, from the scheduled time) of one target in one phase."""

    ok: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


MAX_IN_FLIGHT = 1024


async def _timed(target: Target, scheduled: float, samples: Samples) -> None:
    if target.in_flight >= MAX_IN_FLIGHT:
        samples.error("dropped: generator cap")
        return
    target.in_flight += 1
    try:
        status = await target.call()
    except (OSError, ConnectionError) as exc:
        samples.error(type(exc).__name__)
        return
    finally:
        target.in_flight -= 1
    if status == 200:
        samples.ok.append((time.perf_counter() - scheduled) * 1000)
    else:
        samples.error(str(status))


async def open_loop(
    targets: list[Target], rate: float, duration_s: float, drain_s: float = 10.0
) -> dict[str, Samples]:
    """Send `rate` requests/s to every target for `duration_s`; wait up to `drain_s`
    for the last answers, then count what is still unanswered as `unanswered`."""
    results = {t.name: Samples() for t in targets}
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    total = int(rate * duration_s)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        order = targets if i % 2 == 0 else targets[::-1]
        for target in order:
            task = asyncio.ensure_future(_timed(target, scheduled, results[target.name]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=drain_s)
    for task in list(tasks):
        task.cancel()
    for samples in results.values():
        missing = total - len(samples.ok) - sum(samples.errors.values())
        if missing > 0:
            samples.errors["unanswered"] = missing
    return results


async def closed_loop(target: Target, concurrency: int, duration_s: float) -> tuple[int, int]:
    """`concurrency` callers back to back for `duration_s`: (answered 200, other)."""
    done = [0, 0]
    stop = time.perf_counter() + duration_s

    async def caller() -> None:
        while time.perf_counter() < stop:
            try:
                status = await target.call()
            except (OSError, ConnectionError):
                done[1] += 1
                continue
            done[0 if status == 200 else 1] += 1

    callers = [asyncio.ensure_future(caller()) for _ in range(concurrency)]
    _, stuck = await asyncio.wait(callers, timeout=duration_s + 10)
    for task in stuck:  # a stalled target: its callers are abandoned, not awaited
        task.cancel()
    return done[0], done[1]


async def settle(target: Target, timeout_s: float = 30.0) -> float:
    """Wait until one call answers within 50 ms (the previous phase's backlog has
    drained), at most `timeout_s`; the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        sent = time.perf_counter()
        try:
            await asyncio.wait_for(target.call(), timeout=5)
        except (OSError, ConnectionError, TimeoutError):
            await asyncio.sleep(0.5)
            continue
        if time.perf_counter() - sent < 0.05:
            break
        await asyncio.sleep(0.2)
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
