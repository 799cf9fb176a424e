"""Running cascades: step after step until a verifier accepts an answer.

The plan comes from the router (`modelyard.routing.cascade`); the executor hands a
cascade decision to `runner.run_cascade` / `runner.stream_cascade`.
"""

from modelyard.cascade.trace import CascadeTrace, HopTrace

__all__ = ["CascadeTrace", "HopTrace"]
