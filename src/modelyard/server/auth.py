"""Who is calling: `Authorization: Bearer <key>` (or Anthropic's `x-api-key: <key>`,
which wins when both are sent) on every `/v1/*` call.

A key is required once any key exists (revoked ones included), or when the
server binds a non-loopback address; until then an `Authorization` header that
is not a modelyard key (SDKs always send one) is ignored. Missing, malformed,
unknown, revoked or expired: 401 in the OpenAI shape (Anthropic's on
`/v1/messages`). Lookups are by SHA-256 (one indexed query, then a constant-time
compare),
cached for `cache_s` seconds, so a revocation reaches every replica within that.
`x-modelyard-tags: a,b` tags the call (for per-tag budgets and usage).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard.errors import AuthenticationError, InvalidRequestError, ModelyardError
from modelyard.keys import ApiKey, KeyStore, Principal, hash_key, well_formed
from modelyard.server.messages.errors import shaped_error

_TAG: Final = re.compile(r"[A-Za-z0-9.:-]{1,64}")
MAX_TAGS: Final = 8


def parse_tags(value: str | None) -> tuple[str, ...]:
    """The tags of `x-modelyard-tags`; 400 for anything but a short list of names."""
    if not value:
        return ()
    tags = tuple(t.strip() for t in value.split(",") if t.strip())
    if len(tags) > MAX_TAGS or not all(_TAG.fullmatch(t) for t in tags):
        raise InvalidRequestError(
            f"x-modelyard-tags must be up to {MAX_TAGS} comma-separated tags of "
            "1-64 letters, digits, '.', ':' or '-'",
            param="x-modelyard-tags",
        )
    return tags


@dataclass
class Authenticator:
    """Resolves bearer keys to principals (see the module docstring)."""

    keys: KeyStore | None = None
    require_always: bool = False
    cache_s: float = 2.0
    _cache: dict[str, tuple[float, ApiKey | None]] = field(default_factory=dict)
    _count: tuple[float, int] = (-1e9, 0)

    async def required(self) -> bool:
        if self.require_always:
            return True
        if self.keys is None:
            return False
        at, n = self._count
        if time.monotonic() - at > self.cache_s:
            n = await self.keys.count()
            self._count = (time.monotonic(), n)
        return n > 0

    async def lookup(self, secret: str) -> ApiKey | None:
        if self.keys is None:
            return None
        digest = hash_key(secret)
        hit = self._cache.get(digest)
        if hit is not None and time.monotonic() - hit[0] <= self.cache_s:
            return hit[1]
        key = await self.keys.by_hash(digest)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic(), key)
        return key

    async def principal(
        self, authorization: str | None, tags: str | None, api_key: str | None = None
    ) -> Principal:
        """The caller, or `AuthenticationError` (401). `api_key` is the `x-api-key`
        header, Anthropic's scheme; it is read as a bearer key."""
        tag_list = parse_tags(tags)
        if api_key is not None and api_key.strip():
            authorization = f"Bearer {api_key.strip()}"
        if authorization is not None and not await self.required():
            # No key exists yet and the bind is loopback: SDKs always send some
            # api_key, which means nothing here; a real key still identifies.
            scheme, _, secret = authorization.partition(" ")
            if not well_formed(secret.strip()):
                authorization = None
        if authorization is None:
            if await self.required():
                raise AuthenticationError(
                    "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>' "
                    "(create one with `modelyard keys create`)"
                )
            return Principal(tags=tag_list)
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <key>'")
        secret = secret.strip()
        if not well_formed(secret):
            raise AuthenticationError("invalid API key: not a modelyard key")
        key = await self.lookup(secret)
        if key is None:
            raise AuthenticationError("invalid API key: unknown key")
        problem = key.problem(datetime.now(UTC))
        if problem is not None:
            raise AuthenticationError(f"invalid API key: {problem}")
        return Principal(key=key, tags=tag_list)


class KeyAuth:
    """ASGI middleware: puts the caller's `Principal` on `/v1/*` requests' state."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            who = await self.auth.principal(
                headers.get("authorization"),
                headers.get("x-modelyard-tags"),
                headers.get("x-api-key"),
            )
        except ModelyardError as exc:
            extra = {"www-authenticate": "Bearer"} if exc.http_status == 401 else None
            await shaped_error(scope["path"], exc, extra)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = who
        await self.app(scope, receive, send)
