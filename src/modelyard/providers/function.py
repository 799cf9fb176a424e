"""`FunctionProvider`: a provider backed by a Python function, for tests and local doubles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from modelyard.types import ChatRequest, Chunk, Completion

CompleteFn = Callable[[ChatRequest, str], Awaitable[Completion]]
StreamFn = Callable[[ChatRequest, str], AsyncIterator[Chunk]]


class FunctionProvider:
    """Answers with `complete_fn`; streams with `stream_fn`, or by replaying the
    completion as word chunks followed by a usage chunk."""

    def __init__(self, complete_fn: CompleteFn, stream_fn: StreamFn | None = None) -> None:
        self.complete_fn = complete_fn
        self.stream_fn = stream_fn
        self.calls: list[tuple[ChatRequest, str]] = []

    async def complete(self, request: ChatRequest, upstream_model: str) -> Completion:
        self.calls.append((request, upstream_model))
        return await self.complete_fn(request, upstream_model)

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncIterator[Chunk]:
        self.calls.append((request, upstream_model))
        if self.stream_fn is not None:
            async for chunk in self.stream_fn(request, upstream_model):
                yield chunk
            return
        completion = await self.complete_fn(request, upstream_model)
        for piece in _words(completion.content or ""):
            yield Chunk(content=piece)
        yield Chunk(finish_reason=completion.finish_reason)
        yield Chunk(usage=completion.usage)


def _words(text: str) -> Sequence[str]:
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]
