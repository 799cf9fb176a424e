"""Anthropic Messages in: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

The Anthropic request is validated (`schema`), checked as a conversation and
translated into the internal `ChatRequest` (`translate`), sent through the same
Engine as chat completions, and the answer rendered back as an Anthropic `message`
(`render`) or Anthropic's SSE event sequence (`stream`). Errors leave these routes
in Anthropic's error shape (`errors`). The outbound direction (a `ChatRequest` to an
Anthropic upstream) is `modelyard.providers.anthropic_wire`, whose tables are shared.
"""
