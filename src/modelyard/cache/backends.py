"""Where cached answers live: in process (a bounded LRU whose entries expire), or in
Redis (shared by every gateway replica, expired by Redis itself).

Both store opaque bytes under a key and forget them after the TTL. The Redis one
fails open: an unreachable Redis raises `CacheUnavailableError` at once for
`retry_s` after a failure (a request never waits on a dead Redis more than once per
period), and the outage and the recovery are each logged once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from cachetools import TTLCache

log = logging.getLogger("modelyard.cache")


class CacheUnavailableError(Exception):
    """The backend cannot be reached; the request is served uncached."""


class CacheBackend(Protocol):
    """Bytes under string keys, each forgotten `ttl_s` after it was put."""

    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def delete(self, key: str) -> None: ...


class MemoryBackend:
    """A bounded LRU with a TTL (cachetools' `TTLCache`), on an injectable clock.

    Per process: replicas do not share it, and a restart empties it."""

    name = "memory"

    def __init__(
        self, *, ttl_s: float, max_entries: int, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: TTLCache[str, bytes] = TTLCache(maxsize=max_entries, ttl=ttl_s, timer=timer)

    async def get(self, key: str) -> bytes | None:
        return self._entries.get(key)

    async def put(self, key: str, value: bytes) -> None:
        self._entries[key] = value

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class RedisBackend:
    """Entries under `{prefix}{key}` with Redis's own expiry (`SET ... PX`), on the
    gateway's shared redis.asyncio client."""

    name = "redis"

    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        ttl_s: float,
        retry_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.retry_s = retry_s
        self.monotonic = monotonic
        self._down_until: float | None = None

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda: self.client.get(self.prefix + key))
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode("utf-8")  # a client that decodes responses

    async def put(self, key: str, value: bytes) -> None:
        await self._call(lambda: self.client.set(self.prefix + key, value, px=self.ttl_ms))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self.client.delete(self.prefix + key))

    async def _call(self, command: Callable[[], Any]) -> Any:
        from redis.exceptions import RedisError

        now = self.monotonic()
        if self._down_until is not None and now < self._down_until:
            raise CacheUnavailableError("redis unreachable")
        try:
            result = await command()
        except (RedisError, OSError, TimeoutError) as exc:
            if self._down_until is None:
                log.warning(
                    "response cache: redis unreachable (%s); serving uncached, retrying "
                    "every %.0f s",
                    exc.__class__.__name__,
                    self.retry_s,
                )
            self._down_until = now + self.retry_s
            raise CacheUnavailableError("redis unreachable") from exc
        if self._down_until is not None:
            log.warning("response cache: redis reachable again")
            self._down_until = None
        return result
