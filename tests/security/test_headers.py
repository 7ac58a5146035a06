"""Security headers on every response, `Cache-Control: no-store` on every response that carries a
token or a client_secret, and the docs behind a setting.

Which routes carry a secret is derived from the OpenAPI document (every operation whose success
response has a `client_secret`, `access_token` or `refresh_token` property), so a new route is
covered without anyone remembering to.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.deps import get_session
from marketplace_api.main import create_app
from tests.conftest import PASSWORD, AuthUser, build_state, make_settings
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.stripe_mocks import mock_create_intent

# Tokens, client secrets and the single-use links a person is sent to (onboarding, dashboard
# login, the hosted Checkout page).
SECRET_FIELDS = {"client_secret", "access_token", "refresh_token", "onboarding_url", "url"}
EVERYWHERE = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}
PRODUCTION = {
    "environment": "production",
    "jwt_secret": "Zq8vN3kLmR1tXw7yBc5dHf2gJp9sUe4a6oIi0",
    "stripe_secret_key": "sk_live_51RealisticKey0123456789",
    "stripe_webhook_secrets": ["whsec_Pl4tf0rmS1gn1ngS3cr3tV4lu3xyz0123"],
    "stripe_api_base": "https://api.stripe.com",
}


def _app(engine: AsyncEngine, session: AsyncSession, database_url: str, **s: object) -> FastAPI:
    app = create_app(state=build_state(make_settings(database_url, **s), engine))

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _property_names(node: Any, schemas: dict[str, Any], seen: set[str]) -> set[str]:
    """Every property name in a schema, following $refs."""
    names: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                names |= _property_names(schemas[name], schemas, seen)
        names.update(node.get("properties", {}))
        for value in node.values():
            names |= _property_names(value, schemas, seen)
    elif isinstance(node, list):
        for value in node:
            names |= _property_names(value, schemas, seen)
    return names


def _secret_operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    schemas = document["components"]["schemas"]
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2") and SECRET_FIELDS & _property_names(
                    response.get("content", {}), schemas, set()
                ):
                    found.append((method.upper(), path))
                    break
    return sorted(found)


async def test_the_secret_carrying_routes_are_derived_from_the_schema(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    operations = _secret_operations(document)
    # Not vacuous: the token, checkout and payment routes are among them.
    assert ("POST", "/v1/auth/token") in operations
    assert ("POST", "/v1/auth/refresh") in operations
    assert ("POST", "/v1/buyer/orders") in operations
    assert ("GET", "/v1/buyer/payments/{payment_id}") in operations
    assert ("POST", "/v1/vendor/payments/dashboard-link") in operations
    assert ("POST", "/v1/vendor/payments/onboarding-link") in operations
    assert ("POST", "/v1/buyer/orders/{order_id}/checkout-session") in operations


async def test_every_response_of_a_secret_carrying_route_is_no_store(
    client: httpx.AsyncClient,
) -> None:
    """Whatever the answer (2xx, 401, 404, 422), the route's responses are never cached."""
    operations = _secret_operations((await client.get("/openapi.json")).json())
    not_stored = {}
    for method, path in operations:
        url = path
        while "{" in url:
            start, end = url.index("{"), url.index("}")
            url = url[:start] + str(uuid.uuid4()) + url[end + 1 :]
        response = await client.request(method, url)
        not_stored[(method, path)] = response.headers.get("cache-control")
    assert not_stored == dict.fromkeys(operations, "no-store")


async def test_token_checkout_payment_and_replayed_checkout_answers_are_no_store(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    login = await client.post(
        "/v1/auth/token", data={"username": buyer.user.email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, stock=5)
    mock_create_intent(stripe_api)
    body = {"items": [{"listing_id": str(listing.id), "quantity": 1}]}
    headers = {**buyer.headers, "Idempotency-Key": "no-store-1"}
    created = await client.post("/v1/buyer/orders", json=body, headers=headers)
    replayed = await client.post("/v1/buyer/orders", json=body, headers=headers)
    assert created.status_code == replayed.status_code == 201
    assert replayed.json()["client_secret"]
    payment = await client.get(
        f"/v1/buyer/payments/{created.json()['payment_id']}", headers=buyer.headers
    )
    assert payment.status_code == 200
    for response in (login, refreshed, created, replayed, payment):
        assert response.headers["cache-control"] == "no-store"
    me = await client.get("/v1/auth/me", headers=buyer.headers)
    assert "no-store" not in me.headers.get("cache-control", "")  # only where a secret is


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/v1/platform/config"),
        ("GET", "/v1/auth/me"),  # 401
        ("GET", "/no/such/route"),  # 404
        ("POST", "/v1/auth/register"),  # 422
        ("GET", "/docs"),
    ],
)
async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert {name: response.headers.get(name) for name in EVERYWHERE} == EVERYWHERE
    assert "strict-transport-security" not in response.headers  # not outside production


async def test_production_adds_strict_transport_security(
    engine: AsyncEngine, session: AsyncSession, database_url: str
) -> None:
    async with _client(_app(engine, session, database_url, **PRODUCTION)) as http:
        response = await http.get("/healthz")
    assert response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    assert {name: response.headers.get(name) for name in EVERYWHERE} == EVERYWHERE


async def test_docs_render_with_their_local_assets(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "SwaggerUIBundle" in docs.text
    asset = docs.text.split('src="', 1)[1].split('"', 1)[0]
    assert asset.startswith("/static-offline-docs/")
    assert (await client.get(asset)).status_code == 200
    redoc = await client.get("/redoc")
    assert redoc.status_code == 200
    assert "redoc" in redoc.text.lower()
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "marketplace-api"


DOCS = ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"]


@pytest.mark.parametrize("path", DOCS)
async def test_docs_are_off_by_default_in_production(
    engine: AsyncEngine, session: AsyncSession, database_url: str, path: str
) -> None:
    async with _client(_app(engine, session, database_url, **PRODUCTION)) as http:
        response = await http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("path", DOCS)
async def test_docs_can_be_turned_on_in_production_and_off_in_development(
    engine: AsyncEngine, session: AsyncSession, database_url: str, path: str
) -> None:
    async with _client(
        _app(engine, session, database_url, **PRODUCTION, docs_enabled=True)
    ) as http:
        assert (await http.get(path)).status_code == 200
    async with _client(
        _app(engine, session, database_url, environment="development", docs_enabled=False)
    ) as http:
        assert (await http.get(path)).status_code == 404
