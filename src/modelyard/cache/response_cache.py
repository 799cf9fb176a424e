"""`ResponseCache`: look a request up, and keep the answers worth keeping.

It never fails a request: an entry it cannot read (corrupt, another version) or no
longer serve (its model left the catalog) is dropped and counted as a miss, with the
reason in `x-modelyard-cache-reason`; an unreachable backend makes the request a
`bypass` ("cache unavailable") and is logged once by the backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from modelyard.cache.backends import CacheBackend, CacheUnavailableError
from modelyard.cache.entry import CachedAnswer, CorruptEntryError
from modelyard.cache.key import admission, cache_key
from modelyard.cache.note import CacheNote
from modelyard.config import CacheConfig
from modelyard.types import ChatRequest

log = logging.getLogger("modelyard.cache")
UNAVAILABLE = "cache unavailable"


@dataclass(frozen=True, slots=True)
class Probe:
    """One request's lookup: the verdict, the key to store the fresh answer under
    (None: do not store) and, on a hit, the answer to serve."""

    note: CacheNote
    key: str | None = None
    answer: CachedAnswer | None = None


class ResponseCache:
    """Exact-match cache of answers over a `CacheBackend` (see `modelyard.cache`)."""

    def __init__(self, backend: CacheBackend, settings: CacheConfig) -> None:
        self.backend = backend
        self.settings = settings

    async def lookup(
        self,
        request: ChatRequest,
        *,
        target: str,
        key_id: str | None,
        unusable: Callable[[CachedAnswer], str | None],
    ) -> Probe:
        """Find `request`'s answer. `unusable` says why a found answer may not be
        served any more (its model was removed), which makes it a miss."""
        allowed = admission(request, self.settings)
        if not allowed.read and not allowed.store:
            return Probe(CacheNote("bypass", allowed.reason))
        key = cache_key(request, target=target, key_id=key_id)
        if not allowed.read:
            return Probe(CacheNote("bypass", allowed.reason), key)
        try:
            raw = await self.backend.get(key)
        except CacheUnavailableError:
            return Probe(CacheNote("bypass", UNAVAILABLE))
        if raw is None:
            return Probe(CacheNote("miss"), key)
        try:
            answer = CachedAnswer.decode(raw)
        except CorruptEntryError as exc:
            log.warning("response cache: dropped entry %s…: %s", key[:12], exc)
            await self._forget(key)
            return Probe(CacheNote("miss", "corrupt entry dropped"), key)
        if (why := unusable(answer)) is not None:
            await self._forget(key)
            return Probe(CacheNote("miss", f"stale entry dropped: {why}"), key)
        return Probe(CacheNote("hit"), key, answer)

    async def store(self, probe: Probe, answer: CachedAnswer) -> None:
        """Keep `answer` under the probe's key, unless the probe says not to or the
        answer is larger than `max_entry_bytes`. Never raises for the backend."""
        if probe.key is None:
            return
        value = answer.encode()
        if len(value) > self.settings.max_entry_bytes:
            log.debug("response cache: answer of %d bytes not stored", len(value))
            return
        try:
            await self.backend.put(probe.key, value)
        except CacheUnavailableError:
            return

    async def _forget(self, key: str) -> None:
        try:
            await self.backend.delete(key)
        except CacheUnavailableError:
            return
