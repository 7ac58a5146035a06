"""Rate limits count what a client cannot change at will.

Login, register and refresh are counted per client address (and login also per target e-mail),
whatever token the request carries: a bearer token, even a deactivated user's, used to buy a fresh
budget. Signed-in limits (checkout, its hosted-page session, refund requests) are counted per
verified, active user. Each is run against in-memory storage and the real Redis.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.accounts.models import Role, User
from marketplace_api.accounts.security import create_access_token
from marketplace_api.config import Settings
from marketplace_api.deps import get_session
from marketplace_api.main import create_app
from marketplace_api.ratelimit import RateLimiter
from tests.conftest import _PASSWORD_HASH, PASSWORD, build_state, make_settings

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def _memory() -> RateLimiter:
    return RateLimiter()


def _redis() -> RateLimiter:
    # A prefix of its own: each test starts with an empty budget in the shared Redis.
    return RateLimiter(REDIS_URL, key_prefix=f"test-{uuid.uuid4().hex}")


STORAGES = [pytest.param(_memory, id="memory"), pytest.param(_redis, id="redis")]


@asynccontextmanager
async def _app(
    engine: AsyncEngine,
    session: AsyncSession,
    database_url: str,
    limiter: RateLimiter,
    **overrides: object,
) -> AsyncIterator[tuple[Settings, Callable[[str], httpx.AsyncClient]]]:
    """The app, and a factory of clients each connecting from the given address."""
    if not await limiter.storage.check():
        pytest.fail("the rate-limit storage is not reachable")
    settings = make_settings(database_url, **overrides)
    state = build_state(settings, engine)
    state.rate_limiter = limiter
    app = create_app(state=state)

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    clients: list[httpx.AsyncClient] = []

    def client_from(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://t")
        clients.append(client)
        return client

    try:
        yield settings, client_from
    finally:
        for client in clients:
            await client.aclose()


async def _user(session: AsyncSession, role: Role = Role.buyer, *, active: bool = True) -> User:
    user = User(
        email=f"rl-{uuid.uuid4().hex[:10]}@example.com",
        password_hash="x",
        role=role,
        is_active=active,
    )
    session.add(user)
    await session.commit()
    return user


def _bearer(settings: Settings, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_access_token(settings, user.id, user.role)}"}


# (scope of the limit, path, request body) of every route counted per client address.
ADDRESS_LIMITED = [
    pytest.param(
        "login",
        "/v1/auth/token",
        {"data": {"username": "nobody@example.com", "password": "wrong-password"}},
        id="login",
    ),
    pytest.param(
        "register",
        "/v1/auth/register",
        {"json": {"email": "a@example.com", "password": "short"}},
        id="register",
    ),
    pytest.param(
        "refresh",
        "/v1/auth/refresh",
        {"json": {"refresh_token": "not-a-refresh-token-at-all"}},
        id="refresh",
    ),
]


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize(("scope", "path", "body"), ADDRESS_LIMITED)
async def test_a_new_bearer_token_buys_no_new_budget_on_address_limited_routes(
    engine: AsyncEngine,
    session: AsyncSession,
    database_url: str,
    storage: Callable[[], RateLimiter],
    scope: str,
    path: str,
    body: dict[str, object],
) -> None:
    users = [await _user(session) for _ in range(2)]
    inactive = await _user(session, active=False)
    async with _app(
        engine, session, database_url, storage(), **{f"rate_limit_{scope}": "2/minute"}
    ) as (settings, client_from):
        http = client_from("198.51.100.10")
        statuses = [
            (await http.post(path, headers=_bearer(settings, user), **body)).status_code  # type: ignore[arg-type]
            for user in [*users, inactive]
        ]
        elsewhere = await client_from("198.51.100.11").post(path, **body)  # type: ignore[arg-type]
    assert 429 not in statuses[:2]
    assert statuses[2] == 429  # three tokens, one address: one budget of two
    assert elsewhere.status_code != 429  # the budget is the address's, not everyone's


@pytest.mark.parametrize("storage", STORAGES)
async def test_login_is_limited_per_target_email_across_addresses(
    engine: AsyncEngine,
    session: AsyncSession,
    database_url: str,
    storage: Callable[[], RateLimiter],
) -> None:
    async with _app(engine, session, database_url, storage(), rate_limit_login_email="3/hour") as (
        _,
        client_from,
    ):
        # A distributed guess: each attempt from another address, the e-mail spelled variously.
        spellings = [
            "victim@example.com",
            "Victim@Example.com",
            " victim@example.com",
            "VICTIM@example.com",
        ]
        statuses = [
            (
                await client_from(f"203.0.113.{i}").post(
                    "/v1/auth/token", data={"username": email, "password": "guess"}
                )
            ).status_code
            for i, email in enumerate(spellings, start=1)
        ]
        other = await client_from("203.0.113.99").post(
            "/v1/auth/token", data={"username": "someone@example.com", "password": "guess"}
        )
    assert statuses == [401, 401, 401, 429]
    assert other.status_code == 401


# Every route counted per signed-in user: (scope of the limit, method, path).
USER_LIMITED = [
    pytest.param("checkout", "/v1/buyer/orders", {"json": {"items": []}}, id="checkout"),
    pytest.param(
        "checkout",
        f"/v1/buyer/orders/{uuid.uuid4()}/checkout-session",
        {},
        id="checkout-session",
    ),
    pytest.param(
        "refund_request",
        f"/v1/buyer/orders/{uuid.uuid4()}/refund-requests",
        {"json": {"reason": "broken"}},
        id="refund-request",
    ),
]


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize(("scope", "path", "body"), USER_LIMITED)
async def test_signed_in_limits_belong_to_the_verified_user(
    engine: AsyncEngine,
    session: AsyncSession,
    database_url: str,
    storage: Callable[[], RateLimiter],
    scope: str,
    path: str,
    body: dict[str, object],
) -> None:
    buyer, other_buyer = await _user(session), await _user(session)
    deactivated = await _user(session, active=False)
    async with _app(
        engine, session, database_url, storage(), **{f"rate_limit_{scope}": "2/minute"}
    ) as (settings, client_from):
        # The same buyer from several addresses, each request with a freshly issued token.
        own = [
            (
                await client_from(f"198.51.100.{i}").post(
                    path,
                    headers=_bearer(settings, buyer),
                    **body,  # type: ignore[arg-type]
                )
            ).status_code
            for i in range(3)
        ]
        other = await client_from("198.51.100.1").post(
            path,
            headers=_bearer(settings, other_buyer),
            **body,  # type: ignore[arg-type]
        )
        # A deactivated user's token is refused before anything is counted.
        refused = [
            (
                await client_from("198.51.100.1").post(
                    path,
                    headers=_bearer(settings, deactivated),
                    **body,  # type: ignore[arg-type]
                )
            ).status_code
            for _ in range(3)
        ]
    assert own[:2] != [429, 429]
    assert own[2] == 429
    assert other.status_code != 429
    assert refused == [401, 401, 401]


@pytest.mark.parametrize("storage", STORAGES)
async def test_the_right_password_is_never_locked_out_by_other_peoples_attempts(
    engine: AsyncEngine,
    session: AsyncSession,
    database_url: str,
    storage: Callable[[], RateLimiter],
) -> None:
    """Only failed attempts spend the e-mail's budget: successful logins (or the owner's own
    right password) never exhaust it, and the owner can log in while it has budget left."""
    owner = await _user(session)
    owner.password_hash = _PASSWORD_HASH
    await session.commit()
    async with _app(engine, session, database_url, storage(), rate_limit_login_email="2/hour") as (
        _,
        client_from,
    ):
        good = {"username": owner.email, "password": PASSWORD}
        successes = [
            (await client_from(f"203.0.113.{i}").post("/v1/auth/token", data=good)).status_code
            for i in range(1, 5)
        ]
        wrong = {"username": owner.email, "password": "guess"}
        failures = [
            (await client_from(f"198.51.100.{i}").post("/v1/auth/token", data=wrong)).status_code
            for i in range(1, 4)
        ]
    assert successes == [200, 200, 200, 200]
    assert failures == [401, 401, 429]  # two failures spend the budget; the third is refused


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_an_ipv6_host_counts_as_its_64_network(peer: str, key: str) -> None:
    from marketplace_api.deps import address_key

    assert address_key(peer) == key


@pytest.mark.parametrize("storage", STORAGES)
async def test_addresses_of_one_ipv6_network_share_a_budget(
    engine: AsyncEngine,
    session: AsyncSession,
    database_url: str,
    storage: Callable[[], RateLimiter],
) -> None:
    async with _app(engine, session, database_url, storage(), rate_limit_register="2/minute") as (
        _,
        client_from,
    ):
        statuses = [
            (
                await client_from(f"2001:db8:5:6::{i:x}").post(
                    "/v1/auth/register", json={"email": "x", "password": "y", "role": "buyer"}
                )
            ).status_code
            for i in range(1, 4)
        ]
        other_network = await client_from("2001:db8:5:7::1").post(
            "/v1/auth/register", json={"email": "x", "password": "y", "role": "buyer"}
        )
    assert 429 not in statuses[:2]
    assert statuses[2] == 429
    assert other_network.status_code != 429
