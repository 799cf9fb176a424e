"""Councils: several models answer in parallel, an adjudicator reconciles them.

The plan comes from the router (`modelyard.routing.council`); the executor hands a
council decision to `runner.run_council` / `runner.stream_council`. `agreement` and
`claims` measure how far the members agree; `reviews` is the queue of disputed
results waiting for a person.
"""
