"""A cascade over the test stack: models answer from a script; errors are raised."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Mapping
from typing import Any

from modelyard.engine import Engine, build_engine
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.types import ChatRequest, Completion, Usage
from tests.stack import ENV, STACK, stack_config

# What each model says, by model id; an exception instance is raised instead.
Script = dict[str, Any]
Responder = Callable[[ChatRequest, str], Any]

AGREE = {"type": "agreement", "min_agree": 2, "extract": "choice"}


def cascade_config(models: Mapping[str, Any] | None = None, **policies: Any) -> Any:
    return stack_config(
        policies={**STACK["policies"], **policies}, models={**STACK["models"], **(models or {})}
    )


def scripted(script: Script | Responder) -> FunctionProvider:
    """A provider whose model `upstream` answers `script[upstream]` (or raises it)."""

    async def complete(request: ChatRequest, upstream: str) -> Completion:
        said = script(request, upstream) if callable(script) else script[upstream]
        if inspect.isawaitable(said):
            said = await said
        if isinstance(said, BaseException):
            raise said
        if isinstance(said, Completion):
            return said
        return Completion(id=f"c-{upstream}", model=upstream, content=said, usage=USAGE[upstream])

    return FunctionProvider(complete)


# Distinct token counts per model, so a total that missed a hop would show.
USAGE = {
    "small": Usage(input_tokens=100, output_tokens=10),
    "vision-mid": Usage(input_tokens=100, output_tokens=20),
    "frontier": Usage(input_tokens=100, output_tokens=30),
    "local-llm": Usage(input_tokens=100, output_tokens=40),
    "local-2": Usage(input_tokens=100, output_tokens=50),
}
# A second private model, for cascades that stay on private deployments.
LOCAL_2 = {"local-2": {**STACK["models"]["local-llm"], "quality": {"default": 0.55}}}


def engine_for(
    script: Script | Responder,
    ledger: InMemoryLedger,
    policies: Mapping[str, Any],
    models: Mapping[str, Any] | None = None,
) -> Engine:
    counter = iter(range(1, 1_000_000))
    provider = scripted(script)
    return build_engine(
        cascade_config(models, **policies),
        env=ENV,
        ledger=ledger,
        providers={name: provider for name in ("cheapco", "bigco", "onprem")},
        rng=random.Random(7),
        ids=lambda: f"id{next(counter)}",
        source="test-stack.yaml",
    )


def ask(model: str = "frugal", content: str = "Which letter?", **extra: Any) -> ChatRequest:
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return ChatRequest.model_validate(body)
