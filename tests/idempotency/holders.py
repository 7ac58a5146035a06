"""Another process's hold on an Idempotency-Key: its advisory lock, taken on a connection of
its own, exactly as `run_idempotent` takes it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from marketplace_api.idempotency.service import lock_id


@contextlib.asynccontextmanager
async def hold_key(
    engine: AsyncEngine, user_id: uuid.UUID, key: str
) -> AsyncIterator[AsyncConnection]:
    """Hold the key while the block runs; leaving it closes the connection like a dead process's
    (PostgreSQL ends the transaction and its lock with it)."""
    async with engine.connect() as connection:
        held = await connection.scalar(
            text("SELECT pg_try_advisory_xact_lock(:lock_id)"),
            {"lock_id": lock_id(user_id, key)},
        )
        assert held
        yield connection
        await connection.invalidate()  # closed, not returned to the pool
