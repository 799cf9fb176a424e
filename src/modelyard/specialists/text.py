"""The one rule for which text of a chat request a specialist reads.

A specialist classifies the last user message (its text parts joined): the ticket or
query itself, not a system prompt listing the labels, nor the whole conversation.
Serving (`provider`) and distillation (`distill`, from ledger exchanges) both use
this function, so a specialist is trained on exactly what it will be shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from modelyard.types import Message


def request_text(messages: Iterable[Message | Mapping[str, Any]]) -> str:
    """The last user message's text, else the last message with any text, else ""."""
    last_any = ""
    last_user = ""
    for message in messages:
        role, text = _role_text(message)
        if text:
            last_any = text
            if role == "user":
                last_user = text
    return last_user or last_any


# A WordPiece token never covers more than ~100 characters (a longer word becomes one
# [UNK]), so a prefix this many times the token limit already holds more tokens
# than the encoder reads unless the text is mostly whitespace.
CHARS_PER_TOKEN_BOUND = 101


class _Counts(Protocol):
    def token_lengths(self, texts: Sequence[str]) -> list[int]: ...


def capped_token_lengths(encoder: _Counts, texts: Sequence[str], limit: int | None) -> list[int]:
    """Token counts, exact up to `limit`; for a very long text, the count of a prefix
    once that already exceeds `limit`. Tokenising a 5 MB text just to learn that it
    is over 256 tokens took seconds and a gigabyte."""
    if limit is None:
        return encoder.token_lengths(texts)
    cap = (limit + 1) * CHARS_PER_TOKEN_BOUND
    counts = encoder.token_lengths([t[:cap] for t in texts])
    for i, text in enumerate(texts):
        if len(text) > cap and counts[i] <= limit:  # a mostly-whitespace giant: count it all
            counts[i] = encoder.token_lengths([text])[0]
    return counts


def _role_text(message: Message | Mapping[str, Any]) -> tuple[str, str]:
    if isinstance(message, Message):
        return message.role, message.text().strip()
    content = message.get("content")
    if isinstance(content, list):
        content = "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    text = content.strip() if isinstance(content, str) else ""
    return str(message.get("role", "")), text
