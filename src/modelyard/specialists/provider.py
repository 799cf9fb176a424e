"""The `specialist` adapter: a trained specialist behind the same provider protocol as
an API model, in process (no extra server).

It answers an OpenAI chat request for its task with the label as the message content,
or as a JSON object `{"label": ..., "confidence": ...}` when `response_format` asks
for JSON. Each call is billed at the box's configured cost per call (default 0) via
`Usage.cost_usd`, and `Completion.confidence` carries the calibrated confidence.
Below the threshold it raises `LowConfidenceError` carrying its answer, and the
executor escalates to the next qualified model (or returns this answer when none is
left). A text longer than the encoder reads escalates the same way: the specialist
never saw the part it would have to cut.

The encoder and head run in a worker thread, so a burst of classifications never
blocks the event loop. The artifact is loaded on the first request (or `warm()`).
Its deployment URL names the artifact folder (see `modelyard.specialists.settings`).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from modelyard.errors import (
    LowConfidenceError,
    ModelyardError,
    OutOfScopeError,
    ProviderServerError,
)
from modelyard.providers.base import DeploymentSettings
from modelyard.specialists.settings import SpecialistSettings
from modelyard.specialists.text import capped_token_lengths, request_text
from modelyard.types import ChatRequest, Chunk, Completion, ResponseFormat, Usage

if TYPE_CHECKING:  # NumPy is imported when the artifact is loaded, not at start-up
    from modelyard.specialists.artifact import Prediction, SpecialistModel

log = logging.getLogger(__name__)
LABEL_KEY = "label"
CONFIDENCE_KEY = "confidence"


@dataclass(frozen=True, slots=True)
class _Answer:
    prediction: Prediction
    tokens: int
    too_long: bool


class SpecialistProvider:
    """A `ChatProvider` answering from a specialist artifact."""

    def __init__(
        self,
        settings: SpecialistSettings,
        *,
        deployment: str = "specialist",
        model: SpecialistModel | None = None,
    ) -> None:
        self.settings = settings
        self.deployment = deployment
        self._model = model
        self._lock = threading.Lock()

    def warm(self) -> SpecialistModel:
        """Load the artifact and its encoder now (otherwise on the first request).
        A broken artifact is a provider failure, so the request fails over."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> SpecialistModel:
        where = f"specialist at {self.settings.path}"
        try:
            from modelyard.specialists.artifact import load_specialist

            return load_specialist(self.settings.path)
        except ImportError as exc:
            raise ProviderServerError(
                f"{where} needs the learned extra (pip install 'modelyard[learned]'): {exc}",
                provider=self.deployment,
            ) from exc
        except ModelyardError as exc:
            raise ProviderServerError(
                f"{where} cannot be loaded: {exc.message}", provider=self.deployment
            ) from exc

    @property
    def threshold(self) -> float:
        if self.settings.min_confidence is not None:
            return self.settings.min_confidence
        return self.warm().manifest.threshold

    def _answer(self, text: str) -> _Answer:
        """Runs in a worker thread: encode + head + calibration."""
        model = self.warm()
        limit = model.encoder.max_tokens
        tokens = capped_token_lengths(model.encoder, [text], limit)[0]
        prediction = model.classify([text])[0]
        too_long = limit is not None and tokens > limit
        return _Answer(prediction, min(tokens, limit) if limit else tokens, too_long)

    @property
    def oos_threshold(self) -> float | None:
        """The out-of-scope score at which to escalate; None: no out-of-scope check
        (an artifact from before format 2, or one trained with too few classes)."""
        if self.settings.oos_threshold is not None:
            return self.settings.oos_threshold
        oos = self.warm().manifest.oos
        return None if oos is None else oos.threshold

    async def _completion(self, request: ChatRequest, upstream_model: str) -> Completion:
        answer = await anyio.to_thread.run_sync(self._answer, request_text(request.messages))
        pred = answer.prediction
        completion = Completion(
            id=f"spec-{uuid.uuid4().hex}",
            model=upstream_model,
            content=render(pred, request.response_format),
            usage=Usage(input_tokens=answer.tokens, cost_usd=self.settings.cost_per_call_usd),
            confidence=pred.confidence,
        )
        escalation = self.escalation(answer, upstream_model, completion)
        if escalation is not None:
            raise escalation
        return completion

    def escalation(
        self, answer: _Answer, upstream_model: str, completion: Completion
    ) -> LowConfidenceError | None:
        """Why this answer escalates (out of scope first: a confident answer to a
        question it was never taught is the worse failure), with both scores."""
        threshold, oos_threshold = self.threshold, self.oos_threshold
        pred = answer.prediction
        oos_score = pred.oos_score
        scores = f"confidence {pred.confidence:.3f} (threshold {threshold:.3f})"
        if oos_score is not None and oos_threshold is not None:
            scores += f", out-of-scope score {oos_score:.3f} (threshold {oos_threshold:.3f})"
        kind: type[LowConfidenceError] = LowConfidenceError
        if answer.too_long:
            why = f"text longer than the encoder's {self.warm().encoder.max_tokens} tokens"
        elif oos_score is not None and oos_threshold is not None and oos_score >= oos_threshold:
            why, kind = "out of scope", OutOfScopeError
        elif pred.confidence < threshold:
            why = "low confidence"
        else:
            return None
        return kind(
            f"{upstream_model}: {why}: {scores}; answer '{pred.label}'; escalating",
            confidence=pred.confidence,
            threshold=threshold,
            completion=completion,
            oos_score=oos_score,
            oos_threshold=oos_threshold,
            provider=self.deployment,
        )

    async def complete(self, request: ChatRequest, upstream_model: str) -> Completion:
        return await self._completion(request, upstream_model)

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncIterator[Chunk]:
        """The answer as one content chunk, then finish and usage. A low-confidence
        answer raises before any content, so the executor can still fail over."""
        completion = await self._completion(request, upstream_model)
        yield Chunk(content=completion.content, confidence=completion.confidence)
        yield Chunk(finish_reason="stop")
        yield Chunk(usage=completion.usage)


async def warm_specialists(providers: Mapping[str, object]) -> int:
    """Load every specialist's artifact now (at start-up), in a worker thread, so the
    first request does not wait for it (~0.5 s for MiniLM). A broken artifact is
    logged and left to fail over at request time, as before. Returns how many loaded."""
    loaded = 0
    for name, provider in providers.items():
        if not isinstance(provider, SpecialistProvider):
            continue
        try:
            await anyio.to_thread.run_sync(provider.warm)
            loaded += 1
        except ProviderServerError as exc:
            log.warning("specialist deployment %s not loaded at start-up: %s", name, exc.message)
    return loaded


def specialist_adapter(
    settings: DeploymentSettings, client: httpx.AsyncClient
) -> SpecialistProvider:
    """The `specialist` entry point: built by the registry like any wire adapter
    (the shared HTTP client is not needed: nothing leaves the machine)."""
    del client
    return SpecialistProvider(
        SpecialistSettings.from_url(settings.base_url, settings.name), deployment=settings.name
    )


def render(prediction: Prediction, response_format: ResponseFormat | None) -> str:
    """The label, or a JSON object when the caller asked for JSON."""
    if response_format is None or response_format.type == "text":
        return prediction.label
    key, with_confidence = LABEL_KEY, True
    if response_format.type == "json_schema" and response_format.json_schema is not None:
        key, with_confidence = _schema_keys(response_format.json_schema.schema_ or {})
    body: dict[str, Any] = {key: prediction.label}
    if with_confidence:
        body[CONFIDENCE_KEY] = round(prediction.confidence, 4)
    return json.dumps(body)


def _schema_keys(schema: dict[str, Any]) -> tuple[str, bool]:
    """Which property gets the label, and whether a confidence may be added: "label"
    unless the schema names a single other string property (e.g. "intent")."""
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return LABEL_KEY, True
    allows_extra = schema.get("additionalProperties", True) is not False
    with_confidence = CONFIDENCE_KEY in props or allows_extra
    if LABEL_KEY in props:
        return LABEL_KEY, with_confidence
    strings = [k for k, v in props.items() if isinstance(v, dict) and v.get("type") == "string"]
    key = strings[0] if len(strings) == 1 else LABEL_KEY
    return key, with_confidence
