"""Sentence embeddings for learned routing and specialists.

`Encoder` is the protocol every consumer codes against. `HashingEncoder` needs only
NumPy and is for tests and for users without the `learned` extra; the real encoder
(all-MiniLM-L6-v2, run with ONNX Runtime) lives in `modelyard.embeddings.minilm`.
"""

from modelyard.embeddings.base import Encoder, HashingEncoder, conversation_text

__all__ = ["Encoder", "HashingEncoder", "conversation_text"]
