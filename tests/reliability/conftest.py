"""Fixtures of the reliability suite: the Stripe gateway of the test app, and a sessionmaker whose
sessions join the test's rolled-back transaction (for the jobs: reconcile, retry jobs)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from marketplace_api.deps import AppState
from marketplace_api.integrations.stripe import StripeGateway


@pytest.fixture
def gateway(app_state: AppState) -> StripeGateway:
    assert app_state.stripe is not None
    return app_state.stripe


@pytest.fixture
def sessions(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )
