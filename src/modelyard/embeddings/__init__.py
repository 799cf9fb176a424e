"""Sentence embeddings for learned routing and specialists.

`Encoder` is the protocol every consumer codes against. `HashingEncoder` needs only
NumPy and is for tests and for users without the `learned` extra; the real encoder
(all-MiniLM-L6-v2, run with ONNX Runtime) lives in `modelyard.embeddings.minilm`.
"""

from modelyard.embeddings.base import Encoder, HashingEncoder, conversation_text, encode_batched
from modelyard.embeddings.cache import CachedEncoder
from modelyard.embeddings.registry import DEFAULT_ENCODER, known_encoders, load_encoder

__all__ = [
    "DEFAULT_ENCODER",
    "CachedEncoder",
    "Encoder",
    "HashingEncoder",
    "conversation_text",
    "encode_batched",
    "known_encoders",
    "load_encoder",
]
