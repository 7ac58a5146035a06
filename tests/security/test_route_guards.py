"""The authorization matrix, over every route the app declares (new routes are covered as they
land): only platform, auth, health and webhooks work without a token; each audience's routes
refuse every other role with 403."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from marketplace_api.cli import openapi_document
from tests.conftest import MakeUser

PUBLIC_PREFIXES = (
    "/v1/platform",
    "/v1/auth/register",
    "/v1/auth/token",
    "/v1/auth/refresh",
    "/v1/auth/logout",
    "/healthz",
    "/readyz",
    "/webhooks/",
)
AUDIENCES = ("buyer", "vendor", "admin")


def _operations() -> list[tuple[str, str]]:
    import json

    document: dict[str, Any] = json.loads(openapi_document())
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    ]


def _concrete(path: str) -> str:
    """Fill path parameters with a random UUID (the guard runs before any lookup)."""
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


PROTECTED = [(m, p) for m, p in _operations() if not p.startswith(PUBLIC_PREFIXES)]


def test_there_are_protected_routes() -> None:
    assert ("GET", "/v1/auth/me") in PROTECTED


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_route_without_token_is_401(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, _concrete(path), json={})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"


AUDIENCE_ROUTES = [
    (audience, m, p)
    for m, p in PROTECTED
    for audience in AUDIENCES
    if p.startswith(f"/v1/{audience}/")
]


@pytest.mark.parametrize(("audience", "method", "path"), AUDIENCE_ROUTES)
async def test_route_refuses_other_roles_with_403(
    client: httpx.AsyncClient, make_user: MakeUser, audience: str, method: str, path: str
) -> None:
    for role in AUDIENCES:
        if role == audience:
            continue
        user = await make_user(role)
        response = await client.request(method, _concrete(path), json={}, headers=user.headers)
        assert response.status_code == 403, (role, response.text)
        assert response.json()["code"] == "role_not_allowed"
