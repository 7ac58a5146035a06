"""The embedded PostgreSQL used when `DATABASE_URL` is unset (one-command setup, local tests).

`pgserver` ships PostgreSQL binaries as a Python wheel; the data directory persists across runs, so
`marketplace-api serve` keeps its data after a restart. Production always sets `DATABASE_URL`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def start_embedded_postgres(data_dir: Path, database: str) -> str:
    """Start (or attach to) the embedded server and return an asyncpg URL for `database`.

    The database is created when missing. The server keeps running while any process that
    attached to it is alive.
    """
    import pgserver

    if not _DATABASE_NAME.fullmatch(database):
        raise ValueError(f"invalid database name {database!r}")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
        logger.info("embedded postgres: created database", extra={"database": database})
    socket_dir = quote(str(data_dir), safe="")
    return f"postgresql+asyncpg://postgres@/{database}?host={socket_dir}"
