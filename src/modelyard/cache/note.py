"""What the response cache did for one request: the value behind `x-modelyard-cache`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# `hit`: answered from the cache; `miss`: looked up, not there (the answer is stored);
# `bypass`: not looked up (opted out, not cacheable, or the cache is unreachable).
CacheStatus = Literal["hit", "miss", "bypass"]


@dataclass(frozen=True, slots=True)
class CacheNote:
    """The cache's verdict on a request and, when it is not a plain hit or miss, why."""

    status: CacheStatus
    reason: str | None = None

    def headers(self) -> dict[str, str]:
        """`x-modelyard-cache` and, with a reason, `x-modelyard-cache-reason`."""
        out: dict[str, str] = {"x-modelyard-cache": self.status}
        if self.reason:
            out["x-modelyard-cache-reason"] = self.reason
        return out
