"""The ledger's one write path: a single writer task per process that group-commits.

Every write (a `started` record, its completion, a discard, a captured exchange)
is queued as an `Op`; one task drains the queue and commits everything waiting in
one transaction, then wakes each submitter. A submitter returns only after its
batch committed, so a record is as durable as with one transaction per write,
but N concurrent attempts cost one commit, not N. Nothing is delayed to wait for
company: the first op after an idle spell is committed at once, and the ops that
arrive while that commit runs form the next batch (classic group commit).

A batch that fails (a duplicate id, one unstorable row) is retried op by op, so
one bad record fails alone and never takes its batch-mates with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger("modelyard.ledger")

OpKind = Literal["insert", "finish", "discard", "exchange"]
# The order a batch's ops are applied in: a finish never shares a batch with its own
# start (it waits for that commit), so grouping by kind keeps every dependency.
KIND_ORDER: tuple[OpKind, ...] = ("insert", "finish", "discard", "exchange")


@dataclass(slots=True)
class Op:
    """One queued write: what kind, the bound parameters, and who waits for it."""

    kind: OpKind
    params: dict[str, Any]
    done: asyncio.Future[None] = field(repr=False)


Commit = Callable[[Sequence[Op]], Awaitable[None]]
Tick = Callable[[], Awaitable[None]]


class GroupCommitWriter:
    """Drains queued `Op`s in batches through `commit` (one transaction per call).

    `tick` (the heartbeat and the sweep for dead processes' records) runs every
    `tick_s` seconds on the same task, so it never competes with a batch for
    SQLite's write lock. The task starts lazily on the running loop."""

    def __init__(
        self, commit: Commit, *, tick: Tick | None = None, tick_s: float = 5.0, max_batch: int = 512
    ) -> None:
        self._commit = commit
        self._tick = tick
        self._tick_s = tick_s
        self._max_batch = max_batch
        self._pending: list[Op] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.ops = 0

    async def submit(self, kind: OpKind, params: dict[str, Any]) -> None:
        """Queue one write and return once the transaction holding it has committed."""
        if self._closing:
            raise RuntimeError("ledger is closing: no more writes")
        loop = asyncio.get_running_loop()
        op = Op(kind, params, loop.create_future())
        self._pending.append(op)
        self._ensure_running(loop)
        assert self._wake is not None
        self._wake.set()
        await op.done

    def start(self) -> None:
        """Start the task now (it also starts on the first write): the heartbeat must
        run while a process is idle, or other processes would presume it dead."""
        self._closing = False
        self._ensure_running(asyncio.get_running_loop())

    def _ensure_running(self, loop: asyncio.AbstractEventLoop) -> None:
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name="modelyard-ledger-writer")

    async def _run(self) -> None:
        assert self._wake is not None
        wake = self._wake
        next_tick = time.monotonic() + self._tick_s
        while True:
            if not self._pending:
                if self._closing:
                    return
                wake.clear()
                timeout = max(0.0, next_tick - time.monotonic()) if self._tick else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout)
            if self._tick is not None and time.monotonic() >= next_tick:
                await self._run_tick()
                next_tick = time.monotonic() + self._tick_s
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            if batch:
                await self._flush(batch)

    async def _run_tick(self) -> None:
        assert self._tick is not None
        try:
            await self._tick()
        except Exception:
            # A missed heartbeat or sweep is retried next tick; writes must go on.
            log.exception("ledger heartbeat/recovery sweep failed")

    async def _flush(self, batch: list[Op]) -> None:
        try:
            await self._commit(batch)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], exc)
                return
            # Find the bad op(s): each retried alone, in its own transaction.
            for op in batch:
                await self._flush([op])
            return
        self.batches += 1
        self.ops += len(batch)
        for op in batch:
            _settle(op, None)

    async def close(self) -> None:
        """Commit everything queued, then stop the task."""
        self._closing = True
        task = self._task
        if task is None or task.done():
            return
        if self._wake is not None:
            self._wake.set()
        if task.get_loop() is asyncio.get_running_loop():
            await task
        else:
            task.cancel()


def _settle(op: Op, exc: BaseException | None) -> None:
    if op.done.done():
        return
    if exc is None:
        op.done.set_result(None)
    else:
        op.done.set_exception(exc)


def group(ops: Sequence[Op]) -> list[tuple[OpKind, list[dict[str, Any]]]]:
    """The batch's parameters by kind, in `KIND_ORDER`, for one executemany each."""
    by_kind: dict[OpKind, list[dict[str, Any]]] = {}
    for op in ops:
        by_kind.setdefault(op.kind, []).append(op.params)
    return [(kind, by_kind[kind]) for kind in KIND_ORDER if kind in by_kind]
