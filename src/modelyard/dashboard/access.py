"""Who may read the dashboard.

Open while the gateway itself is open (loopback bind, no key created yet). Once a
key exists, or off loopback, it needs the admin key (`MODELYARD_ADMIN_KEY`): as
`Authorization: Bearer <admin key>`, or through the login form, which sets an
HttpOnly, SameSite=Strict cookie scoped to `/ui`. The cookie holds no secret: an
expiry and an HMAC of it keyed by the admin key's hash, so every replica with the
same admin key accepts it, it dies with the admin key, and nothing is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

from fastapi import Request

from modelyard.keys import hash_key

COOKIE: Final = "modelyard_ui"
SESSION_S: Final = 12 * 3600


class LoginNeeded(Exception):
    """The page needs the admin key; `disabled` when no admin key is configured."""

    def __init__(self, disabled: bool = False) -> None:
        super().__init__("admin key needed")
        self.disabled = disabled


def _sign(admin_hash: str, expires: int) -> str:
    mac = hmac.new(admin_hash.encode(), f"ui-session:{expires}".encode(), hashlib.sha256)
    return f"{expires}.{mac.hexdigest()}"


def session_cookie(admin_hash: str, now: float | None = None) -> str:
    """A fresh cookie value, valid for `SESSION_S` seconds."""
    return _sign(admin_hash, int((now if now is not None else time.time()) + SESSION_S))


def _valid_cookie(value: str, admin_hash: str) -> bool:
    expires, _, _ = value.partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return hmac.compare_digest(value, _sign(admin_hash, int(expires)))


def admin_hash(request: Request) -> str | None:
    found: str | None = getattr(request.app.state, "admin_key_hash", None)
    return found


def is_admin_key(request: Request, secret: str) -> bool:
    expected = admin_hash(request)
    return expected is not None and hmac.compare_digest(hash_key(secret.strip()), expected)


async def require_reader(request: Request) -> None:
    """Raise `LoginNeeded` unless this request may read the dashboard."""
    auth = getattr(request.app.state, "auth", None)
    if auth is None or not await auth.required():
        return
    expected = admin_hash(request)
    if expected is None:
        raise LoginNeeded(disabled=True)
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret.strip() and is_admin_key(request, secret):
        return
    cookie = request.cookies.get(COOKIE)
    if cookie and _valid_cookie(cookie, expected):
        return
    raise LoginNeeded()
