"""Which requests the response cache may answer or keep, and the key it files them under.

The key is a SHA-256 of the canonicalised request: the resolved target (a policy
name, or a model's card id, so an alias and its model share entries), the
conversation, every parameter that changes the answer (the named ones and any
unknown OpenAI parameter passed through, such as `seed` or `logit_bias`), the routing
hints that pick a different kind of answerer (`task`, `capabilities`), the API key's
id and the data class. Left out: `user`, `stream`, `stream_options`, `metadata` and
the like, which do not change the answer, and the cost and latency ceilings, which a
hit (free, immediate) always meets. So one key never sees another's answers, nor a
data class another's, while a streamed and a plain call share their entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from modelyard.config import CacheConfig
from modelyard.types import ChatRequest, DataClass

KEY_VERSION: Final = 1
# Body fields that do not change the answer (OpenAI's names).
IGNORED_PARAMS: Final = frozenset(
    {
        "model",
        "modelyard",
        "user",
        "stream",
        "stream_options",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "max_tokens",
        "max_completion_tokens",
    }
)
_SENSITIVITY: Final = {DataClass.PUBLIC: 0, DataClass.INTERNAL: 1, DataClass.CONFIDENTIAL: 2}


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a request may be answered from the cache (`read`) and whether its
    fresh answer may be kept (`store`); `reason` says why not, for the header."""

    read: bool
    store: bool
    reason: str | None = None


def data_class_of(request: ChatRequest) -> DataClass:
    """The request's data class as routing sees it (internal unless it says)."""
    return request.modelyard.data_class or DataClass.INTERNAL


def sampled(request: ChatRequest) -> bool:
    """Whether the caller asked for a sample rather than a reproducible answer: any
    temperature above 0, or none (providers' default temperature samples), unless a
    `seed` asks for reproducibility."""
    if "seed" in (request.model_extra or {}):
        return False
    return request.temperature != 0


def admission(request: ChatRequest, settings: CacheConfig) -> Admission:
    """Apply the per-request opt-outs and the operator's cacheability rules."""
    directive = request.modelyard.cache
    if directive == "no-store":
        return Admission(False, False, "no-store requested")
    data_class = data_class_of(request)
    if _SENSITIVITY[data_class] > _SENSITIVITY[settings.max_data_class]:
        return Admission(
            False,
            False,
            f"{data_class.value} data is not cached "
            f"(cache.max_data_class: {settings.max_data_class.value})",
        )
    if not settings.sampled and sampled(request):
        why = "unset" if request.temperature is None else f"{request.temperature:g}"
        return Admission(False, False, f"sampled request (temperature {why}); cache.sampled is off")
    if directive == "no-cache":
        return Admission(False, True, "no-cache requested")
    return Admission(True, True)


def cache_key(request: ChatRequest, *, target: str, key_id: str | None) -> str:
    """The hex SHA-256 of the canonical request (see the module docstring)."""
    body = request.model_dump(mode="json", exclude_none=True, by_alias=True)
    params = {k: v for k, v in body.items() if k not in IGNORED_PARAMS}
    if request.output_limit is not None:
        params["max_output_tokens"] = request.output_limit  # either spelling
    if isinstance(request.stop, str):
        params["stop"] = [request.stop]
    hints = request.modelyard
    material: dict[str, Any] = {
        "v": KEY_VERSION,
        "target": target,
        "key_id": key_id,
        "data_class": data_class_of(request).value,
        "task": hints.task,
        "capabilities": sorted(c.value for c in hints.capabilities),
        "request": params,
    }
    # ASCII JSON: any text (lone surrogates included) encodes; sorted keys make it canonical.
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
