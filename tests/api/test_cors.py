"""A browser page on an allowed origin can read every answer: CORS headers and a request id on
successes and on every kind of error (the unexpected 500 included), and the request and response
headers the API's contract uses are allowed and exposed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from marketplace_api.deps import AppState
from marketplace_api.main import create_app

ORIGIN = "https://shop.example"  # tests.conftest.make_settings allows this one origin


def app_with_a_bug(app_state: AppState) -> FastAPI:
    app = create_app(state=app_state)
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError("unexpected")

    app.include_router(boom)
    return app


@pytest.fixture
async def browser(app_state: AppState) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a route that fails unexpectedly, called from the allowed origin."""
    app = app_with_a_bug(app_state)
    # The unexpected exception is raised again after its answer was sent (for the server's log):
    # the transport returns that answer, as a server would send it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Origin": ORIGIN}
    ) as http:
        yield http


ERRORS = {
    "unexpected exception": ("GET", "/boom", {}, 500, "internal_error"),
    "unknown route": ("GET", "/v1/nowhere", {}, 404, "not_found"),
    "wrong method": ("DELETE", "/v1/auth/me", {}, 405, "method_not_allowed"),
    "no token": ("GET", "/v1/auth/me", {}, 401, "not_authenticated"),
    "bad token": (
        "GET",
        "/v1/auth/me",
        {"headers": {"Authorization": "Bearer nope"}},
        401,
        "invalid_token",
    ),
    "validation": ("POST", "/v1/auth/register", {"json": {}}, 422, "validation_error"),
    "body too large": (
        "POST",
        "/v1/auth/register",
        {"content": b"x" * 1_048_577, "headers": {"Content-Type": "application/json"}},
        413,
        "payload_too_large",
    ),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
async def test_every_error_reaches_the_page_with_cors_and_a_request_id(
    browser: httpx.AsyncClient, case: tuple[str, str, dict[str, object], int, str]
) -> None:
    method, path, kwargs, status, code = case
    response = await browser.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert len(response.headers["x-request-id"]) == 32
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-request-id", "www-authenticate", "retry-after"} <= exposed


async def test_unexpected_error_keeps_the_request_id_the_client_sent(
    browser: httpx.AsyncClient,
) -> None:
    response = await browser.get("/boom", headers={"X-Request-ID": "b" * 32})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "b" * 32


async def test_unexpected_error_is_logged_once_and_still_raised_for_the_server(
    app_state: AppState, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=app_with_a_bug(app_state))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        with pytest.raises(RuntimeError, match="unexpected"):
            await http.get("/boom", headers={"Origin": ORIGIN})
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert len(logged) == 1
    assert logged[0].exc_info is not None


@pytest.mark.parametrize(
    "header",
    [
        "Authorization",
        "Content-Type",
        "Idempotency-Key",
        "Last-Event-ID",
        "X-Request-ID",
        "X-Requested-With",
    ],
)
async def test_preflight_allows_the_request_headers_of_the_contract(
    browser: httpx.AsyncClient, header: str
) -> None:
    response = await browser.options(
        "/v1/buyer/orders",
        headers={"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": header},
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert header.lower() in allowed


@pytest.mark.parametrize(
    "header", ["Idempotent-Replayed", "WWW-Authenticate", "X-Request-ID", "Retry-After", "Location"]
)
async def test_response_headers_of_the_contract_are_exposed(
    browser: httpx.AsyncClient, header: str
) -> None:
    response = await browser.get("/healthz")
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert header.lower() in exposed


async def test_preflight_from_an_origin_not_allowed_gets_no_cors_headers(
    browser: httpx.AsyncClient,
) -> None:
    response = await browser.options(
        "/v1/auth/refresh",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-Requested-With",
        },
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
