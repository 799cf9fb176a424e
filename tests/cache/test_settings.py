"""The `cache:` config section, the `Cache-Control` header and which backend is built."""

from __future__ import annotations

import pytest

from modelyard.cache import MemoryBackend, memory_cache, redis_cache
from modelyard.config import CacheConfig
from modelyard.errors import ConfigError
from modelyard.routing.requirements import cache_directive, hints_from_headers
from modelyard.types import RoutingHints
from tests.stack import stack_config


@pytest.mark.parametrize(
    ("header", "directive"),
    [
        (None, None),
        ("max-age=60", None),
        ("no-cache", "no-cache"),
        ("No-Cache, max-age=0", "no-cache"),
        ("no-cache, no-store", "no-store"),
        ("no-store", "no-store"),
    ],
)
def test_cache_control_request_directives(header: str | None, directive: str | None) -> None:
    assert cache_directive(header) == directive


def test_body_hint_wins_over_the_header() -> None:
    body = RoutingHints(cache="default")
    assert hints_from_headers({"cache-control": "no-store"}, body).cache == "default"
    assert hints_from_headers({"cache-control": "no-store"}, RoutingHints()).cache == "no-store"


def test_off_by_default_and_strictly_parsed() -> None:
    assert stack_config().cache.enabled is False
    assert memory_cache(CacheConfig(), {}, lambda: 0.0) is None
    with pytest.raises(ConfigError, match=r"cache\.ttl_s"):
        stack_config(cache={"enabled": True, "ttl_s": 0})
    with pytest.raises(ConfigError, match=r"cache\.backend"):
        stack_config(cache={"backend": "memcached"})
    with pytest.raises(ConfigError, match=r"cache\.shared"):
        stack_config(cache={"shared": True})


def test_backend_choice() -> None:
    on = CacheConfig(enabled=True)
    cache = memory_cache(on, {}, lambda: 0.0)
    assert cache is not None
    assert isinstance(cache.backend, MemoryBackend)
    with pytest.raises(ConfigError, match="MODELYARD_REDIS_URL"):
        memory_cache(CacheConfig(enabled=True, backend="redis"), {}, lambda: 0.0)
    client = object()
    assert redis_cache(CacheConfig(enabled=True, backend="memory"), client, "p:") is None
    assert redis_cache(on, None, "p:") is None
    shared = redis_cache(on, client, "p:")
    assert shared is not None
    assert shared.backend.name == "redis"
