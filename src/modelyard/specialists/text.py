"""The one rule for which text of a chat request a specialist reads.

A specialist classifies the last user message (its text parts joined): the ticket or
query itself, not a system prompt listing the labels, nor the whole conversation.
Serving (`provider`) and distillation (`distill`, from ledger exchanges) both use
this function, so a specialist is trained on exactly what it will be shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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
