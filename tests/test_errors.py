"""Every error is application/problem+json with a stable code, and never leaks internals."""

from __future__ import annotations

import httpx
from fastapi import APIRouter

from marketplace_api.deps import AppState
from marketplace_api.main import create_app

PROBLEM = "application/problem+json"


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert str(body["type"]).endswith(code)
    assert body["title"]
    return body


async def test_unknown_route_is_problem_404(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.get("/v1/nowhere"), 404, "not_found")


async def test_wrong_method_is_problem_405(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.delete("/v1/auth/me"), 405, "method_not_allowed")


async def test_validation_error_lists_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/register", json={"email": "not-an-email"})
    body = _assert_problem(response, 422, "validation_error")
    locs = {tuple(e["loc"]) for e in body["errors"]}  # type: ignore[attr-defined]
    assert ("body", "email") in locs
    assert ("body", "password") in locs


async def test_malformed_json_is_problem_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    _assert_problem(response, 422, "validation_error")


async def test_oversized_body_is_problem_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/register",
        content=b"x" * (1_048_576 + 1),
        headers={"content-type": "application/json"},
    )
    _assert_problem(response, 413, "payload_too_large")


async def test_oversized_chunked_body_without_length_is_problem_413(
    client: httpx.AsyncClient,
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 65_536

    response = await client.post(
        "/v1/auth/register", content=chunks(), headers={"content-type": "application/json"}
    )
    _assert_problem(response, 413, "payload_too_large")


async def test_unexpected_exception_is_problem_500_without_details(
    app_state: AppState,
) -> None:
    app = create_app(state=app_state)
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError("database password is hunter2")

    app.include_router(boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/boom")
    _assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


async def test_responses_carry_a_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "a" * 32})
    assert response.headers["x-request-id"] == "a" * 32
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32


async def test_cors_allows_only_configured_origins(client: httpx.AsyncClient) -> None:
    allowed = await client.options(
        "/v1/auth/me",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    denied = await client.options(
        "/v1/auth/me",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in denied.headers
