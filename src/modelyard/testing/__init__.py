"""Test doubles that speak real provider wire formats over real sockets.

`modelyard.testing.upstream.create_fake_upstream()` is an ASGI app that answers
the OpenAI chat-completions API and the Anthropic Messages API with bodies built
from the official SDKs' own types, and the Gemini API with bodies in its documented
shape (requests checked against the google-genai SDK's types); it records what it
received and can be scripted to fail. Serve it with uvicorn and point deployments at it to drive
the real gateway end to end.
"""
