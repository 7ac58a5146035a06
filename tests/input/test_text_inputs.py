"""Text PostgreSQL cannot store is refused with a 422 naming the field, on every route.

PostgreSQL's text types (and jsonb) refuse NUL (U+0000), and a lone surrogate cannot be encoded
as UTF-8: before, each reached the database and answered 500. The inputs are taken from the
OpenAPI document, so a new field or route is tested without being listed here."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import MakeUser
from tests.input.openapi_inputs import Input, errors_at, inputs, is_text, request_args

TEXT_INPUTS = [field for field in inputs() if is_text(field.schema)]
JSON_TEXT_FIELDS = [
    field
    for field in TEXT_INPUTS
    if field.location == "body" and field.media_type == "application/json"
]


def test_the_inputs_include_every_kind_of_text_input() -> None:
    found = {str(field) for field in TEXT_INPUTS}
    assert {
        "POST /v1/auth/register body:email",
        "POST /v1/auth/token body:username",
        "GET /v1/platform/listings query:q",
        "GET /v1/admin/webhook-events/{event_id} path:event_id",
        "POST /v1/buyer/orders header:Idempotency-Key",
        "POST /v1/buyer/orders body:shipping.address.line1",
        "POST /v1/buyer/orders body:items.0.listing_id",
    } <= found


async def send(
    client: httpx.AsyncClient, make_user: MakeUser, field: Input, value: Any
) -> httpx.Response:
    args = request_args(field, value)
    if field.role is not None:
        user = await make_user(field.role)
        args["headers"] = {**args.get("headers", {}), **user.headers}
    return await client.request(**args)


def assert_refused(response: httpx.Response, field: Input) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error"
    errors = errors_at(body, field)
    assert errors, body
    return errors


@pytest.mark.parametrize("field", TEXT_INPUTS, ids=str)
async def test_nul_character_in_any_text_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, field: Input
) -> None:
    assert_refused(await send(client, make_user, field, "ok\x00ok"), field)


@pytest.mark.parametrize("field", JSON_TEXT_FIELDS, ids=str)
async def test_lone_surrogate_in_any_json_text_field_is_a_422_naming_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, field: Input
) -> None:
    assert_refused(await send(client, make_user, field, "ok\ud800ok"), field)


async def test_nul_is_refused_with_its_own_error_type(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/platform/listings", params={"q": "mug\x00"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == ["query", "q"]
    assert error["type"] == "text_forbidden_character"


@pytest.mark.parametrize(
    "text",
    ["\U0001d518\U0001d52b \U0001f9c9", "e\u0301", "\u202eabc\u202c", "zero\u200bwidth", "שלום"],
    ids=["astral", "combining", "rtl-override", "zero-width", "hebrew"],
)
async def test_odd_but_valid_unicode_is_accepted_and_round_trips(
    client: httpx.AsyncClient, text: str
) -> None:
    response = await client.get("/v1/platform/listings", params={"q": text})
    assert response.status_code == 200, response.text
    registered = await client.post(
        "/v1/auth/register",
        json={"email": "odd@example.com", "password": "x" * 12, "full_name": text},
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["full_name"] == text


# Strings parsed into a value of bounded size (a UUID, a date-time) need no documented length.
PARSED_FORMATS = {"uuid", "date-time"}


@pytest.mark.parametrize("field", TEXT_INPUTS, ids=str)
def test_every_text_input_documents_a_maximum_length(field: Input) -> None:
    schema = field.schema
    bounded_pattern = re.fullmatch(r"\^[^*+]*\$", schema.get("pattern", ""))
    assert "maxLength" in schema or bounded_pattern or schema.get("format") in PARSED_FORMATS


def test_no_request_body_takes_free_form_json() -> None:
    """No request field is an open object or an untyped value: such JSON would reach jsonb
    columns unbounded in depth and content."""
    open_fields = [
        str(field)
        for field in inputs()
        if field.location == "body"
        and (
            not field.schema.get("type")
            or (field.schema.get("type") == "object" and "properties" not in field.schema)
        )
    ]
    assert open_fields == []


@pytest.mark.parametrize("raw", ["%00", "%ED%A0%80", "%FF%FE", "%C0%80"])
async def test_percent_encoded_nul_or_invalid_utf8_is_never_a_500(
    client: httpx.AsyncClient, raw: str
) -> None:
    """Bytes that are not UTF-8 text, percent-encoded in a form, a query or a path."""
    form = await client.post(
        "/v1/auth/token",
        content=f"username={raw}&password=correct-horse-battery",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    query = await client.get(f"/v1/platform/listings?q=mug{raw}")
    for response in (form, query):
        assert response.status_code in {401, 422, 200}, response.text
        if response.status_code == 422:
            assert response.headers["content-type"] == "application/problem+json"
    assert form.status_code != 200
