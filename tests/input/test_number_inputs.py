"""Integers are bounded by their column's or the business's range, and money is a strict integer,
on every route (inputs derived from the OpenAPI document).

Before, 2^63 in a price or in the storefront's `min_price` reached PostgreSQL as a bigint out of
range (500), and `"2500"` or `true` were coerced into amounts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import MakeUser
from tests.input.openapi_inputs import Input, inputs, is_integer
from tests.input.test_text_inputs import assert_refused, send

INTEGER_INPUTS = [field for field in inputs() if is_integer(field.schema)]
MONEY_FIELDS = [
    field
    for field in INTEGER_INPUTS
    if field.location == "body" and any(w in str(field.name[-1]) for w in ("amount", "price"))
]
INT64_MAX = 2**63 - 1


def test_the_inputs_include_prices_amounts_quantities_and_limits() -> None:
    found = {str(field) for field in INTEGER_INPUTS}
    assert {
        "POST /v1/vendor/listings body:price_amount",
        "PATCH /v1/vendor/listings/{listing_id} body:price_amount",
        "GET /v1/platform/listings query:min_price",
        "GET /v1/platform/listings query:max_price",
        "GET /v1/platform/listings query:limit",
        "POST /v1/buyer/orders body:items.0.quantity",
        "POST /v1/vendor/orders/{order_id}/refunds body:amount",
        "POST /v1/admin/payments/{payment_id}/refunds body:amount",
        "POST /v1/buyer/orders/{order_id}/refund-requests body:amount",
    } <= found
    assert len(MONEY_FIELDS) >= 5


@pytest.mark.parametrize("field", INTEGER_INPUTS, ids=str)
def test_every_integer_input_documents_its_range(field: Input) -> None:
    schema = field.schema
    assert "minimum" in schema or "exclusiveMinimum" in schema, schema
    assert "maximum" in schema or "exclusiveMaximum" in schema, schema
    assert schema.get("maximum", schema.get("exclusiveMaximum")) <= INT64_MAX


@pytest.mark.parametrize(
    "value", [2**63, INT64_MAX + 2**64, -(2**63) - 1], ids=["2^63", "2^64+2^63", "-2^63-1"]
)
@pytest.mark.parametrize("field", INTEGER_INPUTS, ids=str)
async def test_integer_beyond_its_range_is_a_422_naming_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, field: Input, value: int
) -> None:
    sent: Any = value if field.location == "body" else str(value)
    assert_refused(await send(client, make_user, field, sent), field)


@pytest.mark.parametrize("value", ["2500", 2500.0, True], ids=["string", "float", "bool"])
@pytest.mark.parametrize("field", MONEY_FIELDS, ids=str)
async def test_money_is_a_strict_integer(
    client: httpx.AsyncClient, make_user: MakeUser, field: Input, value: Any
) -> None:
    errors = assert_refused(await send(client, make_user, field, value), field)
    assert {e["type"] for e in errors} == {"int_type"}, errors


@pytest.mark.parametrize("field", MONEY_FIELDS, ids=str)
def test_money_fields_document_stripes_range(field: Input) -> None:
    assert field.schema.get("minimum") == 1
    assert field.schema.get("maximum") == 99_999_999
