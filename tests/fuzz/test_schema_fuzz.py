"""Schema fuzzing with schemathesis against a real API process, as anonymous, buyer, vendor and
admin: no 5xx (except the documented 503 when Stripe is not configured), every response matches
its documented schema and status codes, and every error is application/problem+json."""

from __future__ import annotations

import json

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from marketplace_api.cli import openapi_document
from tests.fuzz.conftest import FuzzServer

# The app's own document, as committed and served (tests/test_openapi.py keeps them equal).
schema = schemathesis.openapi.from_dict(json.loads(openapi_document()))


ROLES = ("anonymous", "buyer", "vendor", "admin")


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case: schemathesis.Case, fuzz_server: FuzzServer) -> None:
    for role in ROLES:
        headers = {}
        if role != "anonymous":
            headers["Authorization"] = f"Bearer {fuzz_server.tokens[role]}"
        response = case.call(base_url=fuzz_server.base_url, headers=headers)
        if response.status_code >= 400:
            assert response.headers["content-type"] == ["application/problem+json"], response.text
            code = response.json()["code"]
            if response.status_code >= 500:
                assert (response.status_code, code) == (503, "stripe_not_configured"), (
                    role,
                    response.text,
                )
        case.validate_response(
            response,
            checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
            excluded_checks=[not_a_server_error],
        )
