from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import RefreshToken, Role, User
from tests.conftest import PASSWORD, AuthUser, MakeUser

PROBLEM = "application/problem+json"


async def register(client: httpx.AsyncClient, email: str, role: str = "buyer") -> httpx.Response:
    return await client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "role": role}
    )


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/v1/auth/token", data={"username": email, "password": password})


async def test_register_stores_argon2_hash_and_normalised_email(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await register(client, "  Ann@Example.COM ", role="vendor")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "ann@example.com"
    assert body["role"] == "vendor"
    assert "password" not in response.text
    user = await session.scalar(select(User).where(User.email == "ann@example.com"))
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")


async def test_register_twice_is_a_conflict(client: httpx.AsyncClient) -> None:
    assert (await register(client, "bob@example.com")).status_code == 201
    response = await register(client, "BOB@example.com")
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "email_already_registered"


async def test_register_cannot_create_an_admin(client: httpx.AsyncClient) -> None:
    response = await register(client, "eve@example.com", role="admin")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_login_returns_tokens_that_authenticate(client: httpx.AsyncClient) -> None:
    await register(client, "carol@example.com")
    response = await login(client, "carol@example.com")
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    me = await client.get(
        "/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == "carol@example.com"


async def test_wrong_password_and_unknown_user_look_the_same(client: httpx.AsyncClient) -> None:
    await register(client, "dan@example.com")
    wrong = await login(client, "dan@example.com", "not-the-password")
    unknown = await login(client, "nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "invalid_credentials"
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_refresh_rotates_and_old_token_stops_working(client: httpx.AsyncClient) -> None:
    await register(client, "erin@example.com")
    first = (await login(client, "erin@example.com")).json()
    second = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    again = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 401
    assert again.json()["code"] == "invalid_refresh_token"


async def test_reusing_a_rotated_token_revokes_the_whole_family(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await register(client, "fay@example.com")
    first = (await login(client, "fay@example.com")).json()
    second = (
        await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    # The first token leaked and is replayed: the legitimate successor dies with it.
    replay = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    after = await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    tokens = (await session.scalars(select(RefreshToken))).all()
    assert tokens
    assert all(t.revoked_at is not None for t in tokens)


async def test_logout_revokes_refresh_token(client: httpx.AsyncClient) -> None:
    await register(client, "gus@example.com")
    tokens = (await login(client, "gus@example.com")).json()
    out = await client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401


async def test_concurrent_refresh_with_one_token_succeeds_once(
    committed_client: httpx.AsyncClient, make_committed_user: MakeUser
) -> None:
    user = await make_committed_user(Role.buyer)
    tokens = (await login(committed_client, user.user.email)).json()
    responses = await asyncio.gather(
        *(
            committed_client.post(
                "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            for _ in range(10)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] + [401] * 9


async def test_me_requires_a_token(client: httpx.AsyncClient, buyer: AuthUser) -> None:
    missing = await client.get("/v1/auth/me")
    assert missing.status_code == 401
    assert missing.json()["code"] == "not_authenticated"
    ok = await client.get("/v1/auth/me", headers=buyer.headers)
    assert ok.json()["id"] == str(buyer.id)
