"""Texts the MiniLM tests share: varied scripts, lengths and an over-long one."""

TEXTS = [
    "How do I reset my password?",
    "ok",
    "",
    "The invoice from March was charged twice to my credit card, please refund one of them.",
    "Écris un poème sur la mer, s'il te plaît. 🌊",
    "def add(a, b):\n    return a + b",
]
# ~400 tokens before truncation; "word " is one token.
LONG = "word " * 400
