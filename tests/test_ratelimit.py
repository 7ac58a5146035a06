"""Rate limits answer 429 with Retry-After; with Redis the budget is shared across processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.deps import get_session
from marketplace_api.main import create_app
from marketplace_api.ratelimit import RateLimiter
from tests.conftest import build_state, make_settings

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


async def _client(
    engine: AsyncEngine, session: AsyncSession, database_url: str, limiter: RateLimiter, **s: object
) -> httpx.AsyncClient:
    settings = make_settings(database_url, **s)
    state = build_state(settings, engine)
    state.rate_limiter = limiter
    app = create_app(state=state)

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def _login(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post("/v1/auth/token", data={"username": "x@example.com", "password": "y"})


async def test_login_is_rate_limited_with_retry_after(
    engine: AsyncEngine, session: AsyncSession, database_url: str
) -> None:
    async with await _client(
        engine, session, database_url, RateLimiter(), rate_limit_login="3/minute"
    ) as http:
        statuses = [(await _login(http)).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        refused = await _login(http)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_register_is_rate_limited(
    engine: AsyncEngine, session: AsyncSession, database_url: str
) -> None:
    async with await _client(
        engine, session, database_url, RateLimiter(), rate_limit_register="1/minute"
    ) as http:
        body = {"email": "a@example.com", "password": "short"}
        first = await http.post("/v1/auth/register", json=body)
        second = await http.post("/v1/auth/register", json=body)
    assert first.status_code == 422
    assert second.status_code == 429


async def test_redis_budget_is_shared_by_two_app_processes(
    engine: AsyncEngine, session: AsyncSession, database_url: str
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    limiter_a = RateLimiter(REDIS_URL, key_prefix=prefix)
    limiter_b = RateLimiter(REDIS_URL, key_prefix=prefix)
    if not await limiter_a.storage.check():
        pytest.fail(f"Redis is not reachable at {REDIS_URL}")
    async with (
        await _client(engine, session, database_url, limiter_a, rate_limit_login="4/minute") as a,
        await _client(engine, session, database_url, limiter_b, rate_limit_login="4/minute") as b,
    ):
        statuses = [(await _login(http)).status_code for http in (a, b, a, b, a, b)]
    assert statuses == [401, 401, 401, 401, 429, 429]


async def test_disabled_rate_limit_never_refuses(
    engine: AsyncEngine, session: AsyncSession, database_url: str
) -> None:
    async with await _client(
        engine,
        session,
        database_url,
        RateLimiter(),
        rate_limit_login="1/minute",
        rate_limit_enabled=False,
    ) as http:
        statuses = {(await _login(http)).status_code for _ in range(3)}
    assert statuses == {401}


async def test_checkout_is_rate_limited_per_buyer(
    engine: AsyncEngine, session: AsyncSession, database_url: str
) -> None:
    from marketplace_api.accounts.models import Role, User
    from marketplace_api.accounts.security import create_access_token

    settings = make_settings(database_url, rate_limit_checkout="2/minute")
    users = [User(email=f"rl-{i}@example.com", password_hash="x", role=Role.buyer) for i in (1, 2)]
    session.add_all(users)
    await session.commit()
    a, b = (
        {"Authorization": f"Bearer {create_access_token(settings, u.id, u.role)}"} for u in users
    )
    async with await _client(
        engine, session, database_url, RateLimiter(), rate_limit_checkout="2/minute"
    ) as http:
        empty = {"items": []}
        first = [
            (await http.post("/v1/buyer/orders", json=empty, headers=a)).status_code
            for _ in range(3)
        ]
        other = (await http.post("/v1/buyer/orders", json=empty, headers=b)).status_code
    assert first == [422, 422, 429]
    assert other == 422  # the budget is the buyer's, not shared with other buyers


async def test_refund_requests_are_rate_limited(
    engine: AsyncEngine, session: AsyncSession, database_url: str
) -> None:
    from marketplace_api.accounts.models import Role, User
    from marketplace_api.accounts.security import create_access_token

    settings = make_settings(database_url)
    user = User(email="rl-refunds@example.com", password_hash="x", role=Role.buyer)
    session.add(user)
    await session.commit()
    headers = {"Authorization": f"Bearer {create_access_token(settings, user.id, user.role)}"}
    async with await _client(
        engine, session, database_url, RateLimiter(), rate_limit_refund_request="1/minute"
    ) as http:
        path = f"/v1/buyer/orders/{uuid.uuid4()}/refund-requests"
        statuses = [
            (await http.post(path, json={"reason": "broken"}, headers=headers)).status_code
            for _ in range(2)
        ]
    assert statuses == [404, 429]
