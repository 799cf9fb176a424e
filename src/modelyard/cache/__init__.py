"""The response cache: exact-match answers keyed on the canonicalised request.

- `key`: which requests are cacheable, and the key (target, conversation, the
  parameters that change the answer, the API key and the data class);
- `entry`: the stored answer (JSON, validated on read) and its stream replay;
- `backends`: in process (bounded LRU with a TTL) or Redis (shared, fail-open);
- `response_cache`: lookup and store, never failing a request;
- `serve`: a hit at the Engine, and its `cached` ledger record;
- `keep`: storing a miss's answer once it is complete (streams included).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelyard.cache.backends import CacheBackend, MemoryBackend, RedisBackend
from modelyard.cache.note import CacheNote, CacheStatus
from modelyard.cache.response_cache import Probe, ResponseCache
from modelyard.config import CacheConfig
from modelyard.errors import ConfigError

REDIS_URL_ENV = "MODELYARD_REDIS_URL"

__all__ = [
    "CacheBackend",
    "CacheNote",
    "CacheStatus",
    "MemoryBackend",
    "Probe",
    "RedisBackend",
    "ResponseCache",
    "memory_cache",
    "redis_cache",
]


def memory_cache(
    settings: CacheConfig, env: Mapping[str, str], timer: Callable[[], float]
) -> ResponseCache | None:
    """The cache an Engine starts with: None when disabled, else in process (a
    gateway with Redis swaps in `redis_cache` once its client is open)."""
    if not settings.enabled:
        return None
    if settings.backend == "redis" and not env.get(REDIS_URL_ENV):
        raise ConfigError(f"cache.backend: redis needs {REDIS_URL_ENV} to be set")
    backend = MemoryBackend(ttl_s=settings.ttl_s, max_entries=settings.max_entries, timer=timer)
    return ResponseCache(backend, settings)


def redis_cache(settings: CacheConfig, client: Any, prefix: str) -> ResponseCache | None:
    """The shared cache over the gateway's Redis client, under `{prefix}cache:`;
    None when disabled or configured to stay in process."""
    if not settings.enabled or settings.backend == "memory" or client is None:
        return None
    backend = RedisBackend(client, prefix=f"{prefix}cache:", ttl_s=settings.ttl_s)
    return ResponseCache(backend, settings)
