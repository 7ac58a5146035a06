"""Schema fuzzing with schemathesis against a real API process, as anonymous, buyer, vendor and
admin: no 5xx (except the documented 503 when Stripe is not configured), every response matches
its documented schema and status codes, and every error is application/problem+json.

Besides what the schema suggests, three requests in four carry one hostile value
(tests/fuzz/poison.py): NUL or odd unicode spliced into a string of the query, path or body, or
an integer beyond int64. Bounded for CI: `MAX_EXAMPLES` per route, each sent as the four roles,
derandomized so a failure reproduces.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from marketplace_api.cli import openapi_document
from tests.fuzz.conftest import FuzzServer
from tests.fuzz.poison import poisoned

# The app's own document, as committed and served (tests/test_openapi.py keeps them equal).
schema = schemathesis.openapi.from_dict(json.loads(openapi_document()))
# Strings may hold NUL (the default, kept explicit) and any UTF-8 character. Positive mode only:
# mostly valid requests, so one planted value reaches the code behind validation; type and
# shape errors are tests/input's, for every field.
schema.config.generation.update(allow_x00=True, codec="utf-8", modes=[GenerationMode.POSITIVE])

MAX_EXAMPLES = 15


@schema.hook
def flatmap_query(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    return poisoned(query)


@schema.hook
def flatmap_path_parameters(
    context: Any, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[Any]:
    return poisoned(path_parameters)


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    return poisoned(body)


ROLES = ("anonymous", "buyer", "vendor", "admin")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    # No shrinking: each step would be four more requests; the failing request is printed as is.
    phases=[Phase.explicit, Phase.generate],
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
