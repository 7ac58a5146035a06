"""Async Alembic environment.

The URL comes from the app's settings (or the embedded PostgreSQL). A caller that already holds a
connection (the test harness, `marketplace_api.migrations`) passes it in
`config.attributes["connection"]` and no new engine is made.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from marketplace_api.db import create_engine
from marketplace_api.models import Base

target_metadata = Base.metadata

# Objects owned by the job queue (migration 0004 creates them from procrastinate's own schema);
# they have no SQLAlchemy model, so autogenerate and `alembic check` must not see them as drift.
JOB_QUEUE_PREFIX = "procrastinate_"


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith(JOB_QUEUE_PREFIX))


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    from marketplace_api.migrations import resolve_database_url

    url = context.config.attributes.get("database_url") or resolve_database_url()
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure_and_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")

connection = context.config.attributes.get("connection")
if connection is not None:
    _configure_and_run(connection)
else:
    asyncio.run(_run_online())
