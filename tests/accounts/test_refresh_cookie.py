"""Refresh-token cookie mode: the refresh token lives in an HttpOnly, Secure, SameSite=Strict
cookie scoped to /v1/auth, never in a JSON body; refresh and logout refuse cross-site requests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.accounts.models import RefreshToken
from marketplace_api.config import Settings
from marketplace_api.deps import AppState, get_session
from marketplace_api.main import create_app
from tests.conftest import PASSWORD, AuthUser, build_state, make_settings

ORIGIN = "https://shop.example"
SPA = {"Origin": ORIGIN, "X-Requested-With": "marketplace-client"}
COOKIE = "__Secure-refresh_token"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, refresh_token_cookie=True)


@pytest.fixture
async def spa(app_state: AppState, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(state=app_state)

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://api.shop.example"
    ) as http:
        yield http


def set_cookie(response: httpx.Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


async def post(
    http: httpx.AsyncClient,
    path: str,
    token: str | None,
    headers: dict[str, str] = SPA,
    **kw: object,
) -> httpx.Response:
    """POST with exactly the cookie given (the client's own jar is not used)."""
    http.cookies.clear()
    sent = dict(headers)
    if token is not None:
        sent["Cookie"] = f"{COOKIE}={token}"
    response = await http.post(path, headers=sent, **kw)  # type: ignore[arg-type]
    http.cookies.clear()
    return response


async def login(http: httpx.AsyncClient, user: AuthUser) -> tuple[httpx.Response, str]:
    response = await http.post(
        "/v1/auth/token", data={"username": user.user.email, "password": PASSWORD}, headers=SPA
    )
    http.cookies.clear()
    assert response.status_code == 200, response.text
    return response, set_cookie(response)[COOKIE].value


async def test_login_sets_an_httponly_strict_cookie_and_no_token_in_the_body(
    spa: httpx.AsyncClient, buyer: AuthUser, settings: Settings
) -> None:
    response, token = await login(spa, buyer)
    assert "refresh_token" not in response.json()
    assert token not in response.text
    morsel = set_cookie(response)[COOKIE]
    assert morsel["httponly"] is True
    assert morsel["secure"] is True
    assert morsel["samesite"] == "strict"
    assert morsel["path"] == "/v1/auth"
    assert int(morsel["max-age"]) == settings.refresh_token_ttl_seconds
    me = await spa.get(
        "/v1/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
    )
    assert me.status_code == 200


async def test_refresh_rotates_the_cookie_and_answers_without_a_refresh_token(
    spa: httpx.AsyncClient, buyer: AuthUser
) -> None:
    _, first = await login(spa, buyer)
    refreshed = await post(spa, "/v1/auth/refresh", first)
    assert refreshed.status_code == 200, refreshed.text
    assert set(refreshed.json()) == {"access_token", "token_type", "expires_in"}
    second = set_cookie(refreshed)[COOKIE].value
    assert second != first
    me = await spa.get(
        "/v1/auth/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert (await post(spa, "/v1/auth/refresh", second)).status_code == 200


async def test_replaying_a_rotated_cookie_revokes_the_family(
    spa: httpx.AsyncClient, buyer: AuthUser, session: AsyncSession
) -> None:
    _, first = await login(spa, buyer)
    second = set_cookie(await post(spa, "/v1/auth/refresh", first))[COOKIE].value
    replay = await post(spa, "/v1/auth/refresh", first)
    assert replay.status_code == 401
    assert replay.json()["code"] == "invalid_refresh_token"
    after = await post(spa, "/v1/auth/refresh", second)
    assert after.status_code == 401
    tokens = (await session.scalars(select(RefreshToken))).all()
    assert len(tokens) == 2
    assert all(t.revoked_at is not None for t in tokens)


async def test_a_token_in_the_json_body_is_not_accepted_in_cookie_mode(
    spa: httpx.AsyncClient, buyer: AuthUser
) -> None:
    _, token = await login(spa, buyer)
    response = await post(spa, "/v1/auth/refresh", None, json={"refresh_token": token})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"


CROSS_SITE = {
    "no X-Requested-With": {"Origin": ORIGIN},
    "no Origin": {"X-Requested-With": "marketplace-client"},
    "foreign Origin": {"Origin": "https://evil.example", "X-Requested-With": "x"},
    "same-site sibling Origin": {"Origin": "https://blog.shop.example", "X-Requested-With": "x"},
    "null Origin": {"Origin": "null", "X-Requested-With": "x"},
}


@pytest.mark.parametrize("path", ["/v1/auth/refresh", "/v1/auth/logout"])
@pytest.mark.parametrize("headers", CROSS_SITE.values(), ids=CROSS_SITE.keys())
async def test_cross_site_refresh_and_logout_are_refused_and_change_nothing(
    spa: httpx.AsyncClient, buyer: AuthUser, path: str, headers: dict[str, str]
) -> None:
    _, token = await login(spa, buyer)
    refused = await post(spa, path, token, headers=headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "csrf_check_failed"
    assert refused.headers.get_list("set-cookie") == []
    # Neither consumed nor revoked: the SPA's own refresh still works.
    assert (await post(spa, "/v1/auth/refresh", token)).status_code == 200


async def test_logout_revokes_the_family_and_clears_the_cookie(
    spa: httpx.AsyncClient, buyer: AuthUser
) -> None:
    _, token = await login(spa, buyer)
    out = await post(spa, "/v1/auth/logout", token)
    assert out.status_code == 204
    cleared = set_cookie(out)[COOKIE]
    assert cleared.value == ""
    assert int(cleared["max-age"]) == 0
    assert cleared["path"] == "/v1/auth"
    assert (await post(spa, "/v1/auth/refresh", token)).status_code == 401


async def test_refresh_without_the_cookie_is_401(spa: httpx.AsyncClient) -> None:
    response = await post(spa, "/v1/auth/refresh", None)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"


@contextlib.asynccontextmanager
async def app_client(
    settings: Settings, engine: AsyncEngine, session: AsyncSession, base_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(state=build_state(settings, engine))

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as http:
        yield http


async def test_cookie_without_secure_for_http_development_has_no_secure_prefix(
    database_url: str, engine: AsyncEngine, session: AsyncSession, buyer: AuthUser
) -> None:
    settings = make_settings(database_url, refresh_token_cookie=True, refresh_cookie_secure=False)
    async with app_client(settings, engine, session, "http://localhost:8000") as http:
        response = await http.post(
            "/v1/auth/token",
            data={"username": buyer.user.email, "password": PASSWORD},
            headers=SPA,
        )
    morsel = set_cookie(response)["refresh_token"]
    assert morsel["secure"] == ""
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "strict"


def test_production_refuses_a_refresh_cookie_without_secure(database_url: str) -> None:
    with pytest.raises(ValidationError, match="REFRESH_COOKIE_SECURE"):
        make_settings(
            database_url,
            environment="production",
            jwt_secret="p" * 40,
            stripe_secret_key="sk_live_" + "k" * 24,
            refresh_cookie_secure=False,
        )


async def test_body_mode_stays_the_default_and_sets_no_cookie(
    database_url: str, engine: AsyncEngine, session: AsyncSession, buyer: AuthUser
) -> None:
    async with app_client(make_settings(database_url), engine, session, "https://a.b") as http:
        response = await http.post(
            "/v1/auth/token",
            data={"username": buyer.user.email, "password": PASSWORD},
            headers=SPA,
        )
        assert response.json()["refresh_token"]
        assert response.headers.get_list("set-cookie") == []
        missing = await http.post("/v1/auth/refresh", headers=SPA)
    assert missing.status_code == 422
    assert missing.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="a cross-site form"),
        pytest.param(
            {"Origin": "https://evil.example", "X-Requested-With": "x"}, id="other origin"
        ),
        pytest.param({"Origin": ORIGIN}, id="no custom header"),
    ],
)
async def test_cookie_mode_login_refuses_a_cross_site_request_and_sets_no_cookie(
    database_url: str,
    engine: AsyncEngine,
    session: AsyncSession,
    buyer: AuthUser,
    headers: dict[str, str],
) -> None:
    """Login CSRF: a page elsewhere must not log the victim's browser into another account."""
    settings = make_settings(database_url, refresh_token_cookie=True)
    async with app_client(settings, engine, session, "https://api.example") as http:
        response = await http.post(
            "/v1/auth/token",
            data={"username": buyer.user.email, "password": PASSWORD},
            headers=headers,
        )
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_check_failed"
    assert response.headers.get_list("set-cookie") == []
