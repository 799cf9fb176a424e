"""`LearnedScorer`: a trained quality predictor behind the router's `Scorer` protocol.

Quality per candidate is the predictor's estimate for that model on this request's
whole conversation; a card the artifact does not know keeps its prior quality.
Cost and latency are estimated as `PriorScorer` does (list prices, latency
priors), except that the expected answer length is the model's median answer
length in the training data when the artifact has it — verbose models cost more.

Serving imports NumPy and the encoder only (never scikit-learn or torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modelyard.catalog.cards import ModelCard
from modelyard.catalog.tokens import scale_for_family
from modelyard.config import ScorerConfig, artifact_path
from modelyard.embeddings import Encoder, conversation_text
from modelyard.errors import ConfigError
from modelyard.learned.artifact import (
    ArtifactError,
    Manifest,
    content_version,
    load_artifact,
    save_artifact,
)
from modelyard.learned.predictors import Floats, Predictor
from modelyard.routing.plan import Score
from modelyard.routing.scorers import expected_output_tokens
from modelyard.types import ChatRequest, Requirements


def request_text(request: ChatRequest) -> str:
    """The text a request is embedded as: every turn, as in training."""
    return conversation_text(m.model_dump(exclude_none=True) for m in request.messages)


class LearnedScorer:
    """Scores candidates with a trained predictor. `version` (e.g. "knn-3f2a9c01d4")
    names the artifact, and lands on every decision and ledger record."""

    def __init__(
        self,
        predictor: Predictor,
        encoder: Encoder,
        manifest: Manifest,
        model_map: Mapping[str, str] | None = None,
    ) -> None:
        if encoder.id != manifest.encoder.id:
            raise ArtifactError(
                f"the predictor was trained on encoder {manifest.encoder.id!r}, "
                f"but the encoder given is {encoder.id!r}"
            )
        if not manifest.version:
            manifest = manifest.model_copy(
                update={"version": content_version(manifest.kind, manifest, predictor.arrays())}
            )
        self.predictor = predictor
        self.encoder = encoder
        self.manifest = manifest
        self.version = manifest.version
        self.models = tuple(manifest.models)
        self.model_map = dict(model_map or {})
        unknown = sorted(set(self.model_map.values()) - set(self.models))
        if unknown:
            raise ArtifactError(
                f"scorer models map to {', '.join(unknown)}, which the artifact does not "
                f"know (it knows: {', '.join(self.models)})"
            )
        self._column = {m: j for j, m in enumerate(self.models)}
        self._out_tokens = manifest.output_tokens

    def predict(self, texts: Sequence[str]) -> Floats:
        """(len(texts), len(models)) predicted quality, columns in `models` order."""
        return self.predictor.predict(self.encoder.encode(list(texts)))

    def column(self, card_id: str) -> int | None:
        """The artifact column that scores `card_id`, if any."""
        return self._column.get(self.model_map.get(card_id, card_id))

    def score(
        self, request: ChatRequest, req: Requirements, cards: Sequence[ModelCard]
    ) -> list[Score]:
        columns = [self.column(card.id) for card in cards]
        predicted = (
            self.predict([request_text(request)])[0]
            if any(c is not None for c in columns)
            else np.empty(0)
        )
        return [
            self._score(card, col, predicted, req) for card, col in zip(cards, columns, strict=True)
        ]

    def _score(
        self, card: ModelCard, col: int | None, predicted: Floats, req: Requirements
    ) -> Score:
        if col is None:
            return estimated_score(card, card.quality.for_task(req.task), req, None)
        model = self.models[col]
        return estimated_score(card, float(predicted[col]), req, self._out_tokens.get(model))

    def save(self, directory: str | Path) -> Path:
        """Write the artifact (manifest.json + arrays.npz) to `directory`."""
        return save_artifact(Path(directory), self.manifest, self.predictor)

    @classmethod
    def from_config(cls, settings: ScorerConfig, source: str) -> LearnedScorer:
        """Build from the config's `scorer:` section: load the artifact (once, at
        start-up) and its encoder. Problems are ConfigErrors naming the file."""
        if settings.artifact is None:
            raise ConfigError(f"{source}: scorer.artifact: a learned scorer needs an artifact")
        path = artifact_path(settings.artifact, source)
        try:
            return load_scorer(path, model_map=settings.models)
        except ArtifactError as exc:
            raise ConfigError(f"{source}: scorer.artifact: {exc}") from None


def estimated_score(
    card: ModelCard, quality: float, req: Requirements, answer_tokens: float | None
) -> Score:
    """A predicted quality with the card's expected cost and latency: list prices at
    the request's prompt size and the model's typical answer length (`answer_tokens`,
    from outcome data; the requirements' estimate when unknown), capped by the
    request's `max_tokens`."""
    out_tokens = expected_output_tokens(req)
    if answer_tokens is not None:
        cap = req.max_output_tokens
        out_tokens = min(cap, round(answer_tokens)) if cap else round(answer_tokens)
    return Score(
        quality=quality,
        expected_cost_usd=card.prices.estimate(
            scale_for_family(req.prompt_tokens, card.family), out_tokens
        ),
        expected_latency_ms=card.latency.expected_ms(out_tokens),
    )


def guess_encoder_name(encoder_id: str) -> str:
    """The `load_encoder` name for an encoder id, where it can be told from the id."""
    if encoder_id.startswith("hashing-bow-"):
        return "hashing-" + encoder_id.removeprefix("hashing-bow-")
    if encoder_id.startswith("all-MiniLM-L6-v2/"):
        # The registry's default MiniLM is the int8 graph; the float one is "-fp32".
        return "minilm-l6-v2" if encoder_id.endswith("/int8") else "minilm-l6-v2-fp32"
    return encoder_id


def load_scorer(
    directory: str | Path,
    *,
    encoder: Encoder | None = None,
    model_map: Mapping[str, str] | None = None,
) -> LearnedScorer:
    """Load an artifact. Without `encoder`, the one it was trained with is opened by
    name (shared and cached); either way its id must match the artifact's."""
    manifest, predictor = load_artifact(Path(directory))
    if encoder is None:
        from modelyard.embeddings import load_encoder

        encoder = load_encoder(manifest.encoder.name)
    if encoder.id != manifest.encoder.id:
        raise ArtifactError(
            f"{directory}: trained on encoder {manifest.encoder.id!r}, but the encoder "
            f"available is {encoder.id!r}; retrain with this encoder or install the other"
        )
    if encoder.dim != manifest.encoder.dim:
        raise ArtifactError(f"{directory}: encoder width {encoder.dim} != {manifest.encoder.dim}")
    return LearnedScorer(predictor, encoder, manifest, model_map)
