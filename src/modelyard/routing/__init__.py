"""modelyard."""
