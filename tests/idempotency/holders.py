"""Another process's hold on an Idempotency-Key: its advisory lock, taken on a connection of
its own, exactly as `run_idempotent` takes it."""

from __future__ import annotations

import asyncio
import contextlib
import time
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
        pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        yield connection
        await connection.invalidate()  # closed, not returned to the pool
    await _backend_gone(engine, pid)


async def _backend_gone(engine: AsyncEngine, pid: int) -> None:
    """Wait until PostgreSQL has ended the closed connection's backend (and its locks): it does
    so as soon as it reads the end of the connection, a moment after the client closed it."""
    deadline = time.monotonic() + 10
    async with engine.connect() as connection:
        while await connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ):
            assert time.monotonic() < deadline, "the closed connection's backend lives on"
            await connection.rollback()
            await asyncio.sleep(0.01)
