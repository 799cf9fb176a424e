"""Budgets, reservations and rate limits (issue 12): see `gate` for the flow."""
