"""The `learned` verifier: a logistic model predicts whether an answer is good.

    verifier: {type: learned, artifact: verifiers/frugal, threshold: 0.6}

Features of (prompt, answer): both sentence embeddings, their element-wise product
and cosine, the answer's length, and the confidence the answer states about itself
("Confidence: 80%", "I'm 90% sure", "confidence: high"). Only the last `tail_words`
words of the prompt and of the answer are embedded (the question and the final
answer sit at the end; the encoder's time grows with the text), which keeps the
verifier within a few milliseconds on a CPU; the length features see the whole
answer. The model is a logistic regression trained offline
(`modelyard.verifiers.learned_train`, scikit-learn) and served with NumPy alone from
an artifact directory: `manifest.json` (encoder,
threshold, feature layout, training summary) and `weights.npz`. The encoder named in
the manifest is opened once, when the verifier is built.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import anyio
from pydantic import Field

from modelyard.embeddings import conversation_text
from modelyard.errors import ConfigError
from modelyard.verifiers.base import Verdict, VerifierSettings, VerifyContext

FORMAT = "modelyard-verifier-logistic/1"
DEFAULT_TAIL_WORDS = 48
SCALARS = ("cosine", "log_chars", "log_words", "stated_confidence", "states_confidence")
_PERCENT = re.compile(
    r"(?i:confiden\w*|certain\w*|sure)\W{0,12}(\d{1,3}(?:\.\d+)?)\s*%"
    r"|(\d{1,3}(?:\.\d+)?)\s*%\s*(?i:confiden\w*|certain|sure)"
)
_FRACTION = re.compile(r"(?i:confidence)\W{0,4}(0?\.\d+|1\.0*|[01])\b")
_WORDS = re.compile(r"(?i:confidence)\W{0,4}(?i:(very high|high|medium|moderate|low|very low))")
_LEVELS = {
    "very high": 0.95,
    "high": 0.85,
    "medium": 0.6,
    "moderate": 0.6,
    "low": 0.3,
    "very low": 0.1,
}


def stated_confidence(text: str) -> float | None:
    """The confidence an answer claims for itself, in [0, 1]; None when it says none."""
    if m := _PERCENT.search(text):
        value = float(m.group(1) or m.group(2)) / 100
        return value if 0 <= value <= 1 else None
    if m := _FRACTION.search(text):
        return float(m.group(1))
    if m := _WORDS.search(text):
        return _LEVELS[m.group(1).lower()]
    return None


def tail(text: str, words: int) -> str:
    """The last `words` words of `text` (what is embedded)."""
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[-words:])


def features(prompt_vecs: Any, answer_vecs: Any, answers: list[str]) -> Any:
    """The feature matrix for rows of (prompt vector, answer vector, answer text)."""
    import numpy as np

    p = np.asarray(prompt_vecs, dtype=np.float32)
    a = np.asarray(answer_vecs, dtype=np.float32)
    scalars = np.zeros((len(answers), len(SCALARS)), dtype=np.float32)
    for i, text in enumerate(answers):
        conf = stated_confidence(text)
        scalars[i] = (
            float(p[i] @ a[i]),
            math.log1p(len(text)) / 10,
            math.log1p(len(text.split())) / 10,
            conf if conf is not None else 0.0,
            1.0 if conf is not None else 0.0,
        )
    return np.concatenate([p, a, p * a, scalars], axis=1)


@dataclass(frozen=True)
class LogisticModel:
    """Weights and bias of the quality predictor, and what it was trained with."""

    weights: Any
    bias: float
    encoder: str
    threshold: float
    summary: dict[str, Any]
    tail_words: int = DEFAULT_TAIL_WORDS

    def predict(self, x: Any) -> Any:
        """P(good answer) for each row of the feature matrix `x`."""
        import numpy as np

        z = np.asarray(x, dtype=np.float64) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, directory: Path) -> Path:
        """Write `manifest.json` and `weights.npz` into `directory` (created)."""
        import numpy as np

        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "weights.npz", weights=self.weights, bias=np.array([self.bias]))
        manifest = {
            "format": FORMAT,
            "encoder": self.encoder,
            "threshold": self.threshold,
            "tail_words": self.tail_words,
            "features": ["prompt", "answer", "prompt*answer", *SCALARS],
            "summary": self.summary,
        }
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: Path) -> LogisticModel:
        """Read an artifact written by `save`; a missing or foreign one is a ConfigError."""
        import numpy as np

        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            arrays = np.load(directory / "weights.npz")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"no learned verifier artifact at {directory}: {exc}") from None
        if manifest.get("format") != FORMAT:
            raise ConfigError(f"{directory}: not a {FORMAT} artifact")
        return cls(
            weights=arrays["weights"].astype(np.float64),
            bias=float(arrays["bias"][0]),
            encoder=str(manifest["encoder"]),
            threshold=float(manifest["threshold"]),
            summary=dict(manifest.get("summary", {})),
            tail_words=int(manifest.get("tail_words", DEFAULT_TAIL_WORDS)),
        )


class LearnedVerifier:
    """Accept an answer whose predicted probability of being good reaches `threshold`."""

    name: ClassVar[str] = "learned"

    class Settings(VerifierSettings):
        type: Literal["learned"] = "learned"
        artifact: str
        # None: the threshold stored in the artifact.
        threshold: float | None = Field(default=None, ge=0, le=1)

    def __init__(
        self, settings: Settings, *, model: LogisticModel | None = None, encoder: Any = None
    ) -> None:
        from modelyard.embeddings import load_encoder
        from modelyard.learned.scorer import guess_encoder_name

        self.settings = settings
        self.model = model or LogisticModel.load(Path(settings.artifact).expanduser())
        # The artifact records the encoder's id; the registry opens encoders by name.
        self.encoder = encoder or load_encoder(guess_encoder_name(self.model.encoder))
        if self.encoder.id != self.model.encoder:
            raise ConfigError(
                f"the verifier was trained on encoder {self.model.encoder}, not {self.encoder.id}"
            )
        self.threshold = (
            settings.threshold if settings.threshold is not None else (self.model.threshold)
        )

    async def verify(self, ctx: VerifyContext) -> Verdict:
        prompt = conversation_text(m.model_dump(exclude_none=True) for m in ctx.request.messages)
        texts = [a.text for a in ctx.answers]
        # Encoding is CPU work: off the event loop.
        probs = await anyio.to_thread.run_sync(self.score, prompt, texts)
        best = max(range(len(probs)), key=lambda i: (probs[i], -i))
        p = probs[best]
        verb = ">=" if p >= self.threshold else "<"
        reason = f"predicted quality {p:.3f} {verb} threshold {self.threshold:g}"
        return Verdict(p >= self.threshold, p, reason, chosen=best)

    def score(self, prompt: str, answers: list[str]) -> list[float]:
        """P(good) for each answer to `prompt`."""
        import numpy as np

        words = self.model.tail_words
        vecs = self.encoder.encode([tail(t, words) for t in (prompt, *answers)])
        x = features(np.repeat(vecs[:1], len(answers), axis=0), vecs[1:], answers)
        return [float(p) for p in self.model.predict(x)]
