"""Schemathesis against the gateway's own OpenAPI schema, through the ASGI app.

Every operation, with valid (positive) and schema-violating (negative) requests:
no 5xx, every error in OpenAI's shape, and the ledger holding one record per call
the fake upstream received. Schemathesis's pytest plugin does not run on pytest 9
yet, so its Hypothesis strategies are drawn from directly.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.fuzz.gateway import Gateway, build_gateway, check_response

GATEWAY = build_gateway()
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", GATEWAY.app)
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}


def test_every_route_is_in_the_schema() -> None:
    assert {
        "POST /v1/chat/completions",
        "POST /v1/route",
        "GET /v1/models",
        "POST /v1/messages",
        "POST /v1/messages/count_tokens",
    } <= set(OPERATIONS)


# Negative cases need something to violate: only operations that take a body.
CASES = [
    pytest.param(label, mode, id=f"{label}-{mode.value}")
    for label in sorted(OPERATIONS)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or label.startswith("POST")
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_the_openapi_schema_fuzzed(label: str, mode: GenerationMode) -> None:
    strategy = OPERATIONS[label].as_strategy(generation_mode=mode)
    gateway: Gateway = GATEWAY

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        case: Any = data.draw(strategy)
        response = case.call()
        case.validate_response(response, checks=[not_a_server_error])
        content_type = response.headers.get("content-type", [""])[0]
        check_response(gateway, response.status_code, response.content, content_type, case.path)

    fuzz()
