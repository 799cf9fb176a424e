"""`ReplayProvider`: a provider that answers from recorded outcome data.

Each (prompt, model) is answered with the dataset's own response text, token counts
and exact recorded cost (`Usage.cost_usd`, billed as is by the executor), so an
Engine built over it bills precisely what the dataset says that model cost on that
prompt. It is a `ChatProvider` like any wire adapter: the executor cannot tell.

Which prompt a request is: `metadata.prompt_id` in the body when present (the
harness sets it; an OpenAI client can send it too), else the request's conversation
text, which must match exactly one prompt of the dataset.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from modelyard.embeddings import conversation_text
from modelyard.errors import ProviderResponseError, UpstreamRequestError
from modelyard.learned.outcomes import OutcomeSet
from modelyard.types import ChatRequest, Chunk, Completion, Usage

DEPLOYMENT = "replay"


def prompt_metadata(prompt_id: str) -> dict[str, Any]:
    """The body field that names a dataset prompt (OpenAI's free-form `metadata`)."""
    return {"metadata": {"prompt_id": prompt_id}}


def request_text(request: ChatRequest) -> str:
    """The request's conversation as the dataset's prompts are keyed (all turns)."""
    return conversation_text(m.model_dump(exclude_none=True) for m in request.messages)


class ReplayProvider:
    """Answers each (prompt, model) of `data` with its recorded response and cost."""

    def __init__(self, data: OutcomeSet, *, name: str = DEPLOYMENT) -> None:
        self.data = data
        self.name = name
        self.calls = 0
        by_text: dict[str, list[int]] = defaultdict(list)
        for row, text in enumerate(data.texts):
            by_text[text].append(row)
        self._by_text = dict(by_text)
        self._columns = {m: j for j, m in enumerate(data.models)}

    def locate(self, request: ChatRequest) -> int:
        """The dataset row `request` replays."""
        metadata = (request.model_extra or {}).get("metadata")
        if isinstance(metadata, dict) and "prompt_id" in metadata:
            try:
                return self.data.index(str(metadata["prompt_id"]))
            except KeyError as exc:
                raise self._unknown(str(exc.args[0])) from None
        rows = self._by_text.get(request_text(request), [])
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise self._unknown(f"{self.data.name}: no prompt with this conversation text")
        ids = ", ".join(self.data.prompts[r].id for r in rows[:5])
        raise self._unknown(
            f"{self.data.name}: {len(rows)} prompts share this text ({ids}); "
            "name one with metadata.prompt_id"
        )

    def _unknown(self, message: str) -> UpstreamRequestError:
        # The caller's fault, like a 400 from a real upstream: not retried elsewhere.
        return UpstreamRequestError(message, upstream_status=400, provider=self.name)

    def answer(self, request: ChatRequest, upstream_model: str) -> Completion:
        """The recorded completion of `upstream_model` on the request's prompt."""
        self.calls += 1
        row = self.locate(request)
        column = self._columns.get(upstream_model)
        if column is None:
            raise self._unknown(f"{self.data.name}: no model {upstream_model!r} in the dataset")
        prompt = self.data.prompts[row]
        if np.isnan(self.data.quality[row, column]):
            # The dataset has no answer from this model here: like an upstream failure,
            # the executor moves on to the next qualified model.
            raise ProviderResponseError(
                f"{self.data.name}: {upstream_model} has no recorded outcome for prompt "
                f"{prompt.id}",
                provider=self.name,
            )
        usage = Usage(
            input_tokens=max(int(self.data.input_tokens[row, column]), 0),
            output_tokens=max(int(self.data.output_tokens[row, column]), 0),
            cost_usd=self._cost(row, upstream_model),
        )
        return Completion(
            id=f"replay-{prompt.id}-{column}",
            model=upstream_model,
            content=self.data.responses.get((prompt.id, upstream_model), ""),
            usage=usage,
            # The benchmark's own parse of this answer, where the data has one: an
            # `agreement` verifier then compares exactly what the benchmark scored.
            parsed_answer=self.data.preds.get((prompt.id, upstream_model)),
        )

    def _cost(self, row: int, model: str) -> Decimal | None:
        """The exact recorded cost; None (bill by the card's prices) when unknown."""
        try:
            return self.data.cost_decimal(row, model)
        except KeyError:
            return None

    async def complete(self, request: ChatRequest, upstream_model: str) -> Completion:
        return self.answer(request, upstream_model)

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncIterator[Chunk]:
        """The recorded answer as word chunks, then the finish reason, then usage."""
        completion = self.answer(request, upstream_model)
        for piece in _pieces(completion.content or ""):
            yield Chunk(content=piece)
        yield Chunk(finish_reason=completion.finish_reason)
        yield Chunk(usage=completion.usage)


def _pieces(text: str, size: int = 16) -> Sequence[str]:
    """Split into chunks of about `size` words, keeping every character."""
    words = text.split(" ")
    return (
        [
            " ".join(words[i : i + size]) + (" " if i + size < len(words) else "")
            for i in range(0, len(words), size)
        ]
        if text
        else []
    )
