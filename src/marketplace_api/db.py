"""Database: the declarative base, the engine and the per-request session.

Transactions are explicit: services call `session.commit()` when a unit of work is done, and never
keep a transaction open across a call to Stripe.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from marketplace_api import tracing

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UUIDPrimaryKey:
    """Non-enumerable public ids: every resource is addressed by a random UUID."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True),
        server_default=sa.func.now(),
        onupdate=sa.func.now(),
        nullable=False,
    )


class RetryState:
    """A row whose work a background job retries (a Stripe call, an event's processing): how
    many attempts were made, the last one's error, and when the job is due to try again — also
    a lease while an attempt is in flight."""

    attempts: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, pre_ping: bool = False
) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pre_ping,
        # No pre-ping on the API (a round trip per checkout); connections are recycled instead,
        # and a connection that died is discarded on its first error.
        pool_recycle=1800,
        # Statement parameters hold password hashes, tokens' digests and e-mails: never put them
        # in an exception's message (which reaches the logs).
        hide_parameters=True,
        # Timestamps are always stored and compared in UTC.
        connect_args={
            "server_settings": {"timezone": "UTC", "application_name": "marketplace-api"}
        },
    )
    tracing.instrument_engine(engine)  # a span per statement when traces are on
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
