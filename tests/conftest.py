"""Shared fixtures: the migrated test database, per-test isolation, the app client, Stripe mocks.

Isolation: each test runs in an outer transaction on one connection; the app's session joins it
with savepoints (`join_transaction_mode="create_savepoint"`), so services may commit freely and
everything is rolled back after the test. Tests of concurrency use `committed_engine` instead:
real separate connections, real commits, tables truncated afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.pool import NullPool

from marketplace_api import migrations
from marketplace_api.accounts.models import Role, User
from marketplace_api.config import Settings
from marketplace_api.deps import AppState, get_session
from marketplace_api.main import create_app
from tests.fixtures.app import build_state, make_settings
from tests.fixtures.database import prepare_test_database, truncate_all
from tests.fixtures.stripe import STRIPE_API_BASE
from tests.fixtures.tracing import InMemorySpanExporter, recording_spans
from tests.fixtures.users import PASSWORD, AuthUser, MakeUser, user_factory
from tests.fixtures.users import PASSWORD_HASH as _PASSWORD_HASH

# Traces are configured from the process environment: a developer's or CI's OTEL_* settings must
# neither change what the tests see nor send test spans to a real collector.
# The same for the app's own settings (STRIPE_SECRET_KEY, ENVIRONMENT, STRIPE_SIMULATOR, …): each
# test states the settings it runs with.
_APP_SETTINGS = {name.upper() for name in Settings.model_fields}
for _name in [n for n in os.environ if n.startswith("OTEL_") or n in _APP_SETTINGS]:
    del os.environ[_name]

# Helpers that test modules import from here (they live in tests/fixtures/).
__all__ = [
    "PASSWORD",
    "_PASSWORD_HASH",
    "AuthUser",
    "MakeUser",
    "build_state",
    "make_settings",
]


@pytest.fixture(scope="session")
async def database_url() -> str:
    return await prepare_test_database()


@pytest.fixture(scope="session", autouse=True)
def _quiet_logging_at_exit() -> Iterator[None]:
    """Tests that run the app's lifespan or CLI install a root handler on pytest's captured
    stdout; drop it at the end so the embedded PostgreSQL's exit-time log lines have nowhere
    closed to go."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:
            root.removeHandler(handler)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(
        database_url,
        pool_size=20,
        max_overflow=60,
        connect_args={"server_settings": {"timezone": "UTC"}},
    )
    async with engine.begin() as connection:
        await migrations.upgrade(connection, "head")
    yield engine
    await engine.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            if transaction.is_active:
                await transaction.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    ) as session:
        yield session


@pytest.fixture
async def app_state(settings: Settings, engine: AsyncEngine) -> AppState:
    return build_state(settings, engine)


@pytest.fixture
async def client(app_state: AppState, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, every request using the test's rolled-back session."""
    app = create_app(state=app_state)

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http
    app.dependency_overrides.clear()


@pytest.fixture
async def committed_engine(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """For concurrency tests: real commits on separate connections; tables emptied afterwards."""
    from sqlalchemy.ext.asyncio import create_async_engine

    separate = create_async_engine(
        engine.url, poolclass=NullPool, connect_args={"server_settings": {"timezone": "UTC"}}
    )
    await truncate_all(engine)
    try:
        yield separate
    finally:
        await separate.dispose()
        await truncate_all(engine)


@pytest.fixture
async def committed_client(
    settings: Settings, committed_engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its own sessions per request (no shared test transaction)."""
    app = create_app(state=build_state(settings, committed_engine))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Traces on for this test, recorded in memory (engines made from now on are traced)."""
    with recording_spans() as exporter:
        yield exporter


@pytest.fixture
def stripe_api() -> Iterator[respx.MockRouter]:
    """Stripe's API over HTTP. Any request to a route not registered fails the test."""
    with respx.mock(base_url=STRIPE_API_BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def make_user(session: AsyncSession, settings: Settings) -> MakeUser:
    """Create a user in the test transaction and return it with a valid access token."""

    async def add(user: User) -> None:
        session.add(user)
        await session.commit()

    return user_factory(settings, add)


@pytest.fixture
def make_committed_user(committed_engine: AsyncEngine, settings: Settings) -> MakeUser:
    async def add(user: User) -> None:
        async with AsyncSession(committed_engine, expire_on_commit=False) as s:
            s.add(user)
            await s.commit()

    return user_factory(settings, add)


@pytest.fixture
async def buyer(make_user: MakeUser) -> AuthUser:
    return await make_user(Role.buyer)


@pytest.fixture
async def vendor_user(make_user: MakeUser) -> AuthUser:
    return await make_user(Role.vendor)


@pytest.fixture
async def admin(make_user: MakeUser) -> AuthUser:
    return await make_user(Role.admin)
