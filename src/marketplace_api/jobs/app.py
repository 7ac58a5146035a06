"""The procrastinate `App`: one per process, its tasks, and the connector built from settings.

Tasks are declared with `@app.task(...)` in the modules listed in `TASK_MODULES` (a domain that
adds tasks appends its module there, so a worker and `enqueue()` know every task name). They are
listed by name and imported on first use, never at import time: the task modules import the
domains, and the domains import this module to defer work.

The connector is configured lazily: the database URL is resolved from the settings (or the embedded
PostgreSQL) when the app is opened, never at import time. Workers and tests that already know the
URL swap in an explicit connector with `app.replace_connector(build_connector(url))`.

The queue's schema is created by Alembic (migration 0004), not by procrastinate's CLI.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import unquote

import psycopg_pool
from procrastinate import App, PsycopgConnector
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from marketplace_api.config import get_settings
from marketplace_api.migrations import resolve_database_url

# Modules that declare tasks. Imported by the worker and before `enqueue()` checks a task name.
TASK_MODULES: list[str] = ["marketplace_api.worker.tasks", "marketplace_api.notifications.tasks"]

# Queues. A worker listens to all of them unless `--queues` says otherwise.
DEFAULT_QUEUE = "default"
MAINTENANCE_QUEUE = "maintenance"  # the periodic jobs

# Query parameters of an asyncpg/SQLAlchemy URL that have a libpq equivalent.
_ASYNCPG_TO_LIBPQ = {
    "host": "host",
    "port": "port",
    "sslmode": "sslmode",
    "ssl": "sslmode",  # asyncpg spells it `ssl=require`
    "sslrootcert": "sslrootcert",
    "sslcert": "sslcert",
    "sslkey": "sslkey",
    "application_name": "application_name",
    "connect_timeout": "connect_timeout",
    "target_session_attrs": "target_session_attrs",
}


def libpq_conninfo(database_url: str, *, application_name: str = "marketplace-worker") -> str:
    """Turn the app's SQLAlchemy URL (`postgresql+asyncpg://...`) into a libpq conninfo string.

    The embedded PostgreSQL's URL has no host but `?host=<socket directory>`; libpq takes that as
    the `host` keyword too. Parameters that only mean something to asyncpg are dropped.
    """
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {url.drivername}")
    params: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
        "application_name": application_name,
        # Same as the API's engine: timestamps are handled in UTC.
        "options": "-c timezone=UTC",
    }
    for key, value in url.query.items():
        libpq_key = _ASYNCPG_TO_LIBPQ.get(key)
        if libpq_key is None:
            continue
        if isinstance(value, tuple):  # a repeated parameter: libpq takes one value
            value = value[-1]
        value = unquote(value)
        if key == "ssl":  # asyncpg also takes booleans
            value = {"true": "require", "false": "disable"}.get(value.lower(), value)
        params[libpq_key] = value
    return make_conninfo("", **{k: v for k, v in params.items() if v not in (None, "")})


def build_connector(database_url: str, *, max_pool_size: int = 5) -> PsycopgConnector:
    """A connector with its own small pool (the worker's fetch loop, LISTEN and job updates)."""
    return PsycopgConnector(
        conninfo=libpq_conninfo(database_url),
        min_size=1,
        max_size=max(2, max_pool_size),
    )


class _SettingsConnector(PsycopgConnector):
    """The default connector: its conninfo comes from the settings when the app is opened, so
    importing this module has no side effect (no embedded database is started)."""

    def _configure_from_settings(self) -> None:
        if "conninfo" in self._pool_args:
            return
        url = resolve_database_url(get_settings())
        self._pool_args.update(conninfo=libpq_conninfo(url), max_size=5)

    async def open_async(self, pool: psycopg_pool.AsyncConnectionPool | None = None) -> None:
        if pool is None:
            self._configure_from_settings()
        await super().open_async(pool)

    def get_sync_connector(self) -> Any:
        self._configure_from_settings()
        return super().get_sync_connector()


app = App(connector=_SettingsConnector(), import_paths=TASK_MODULES)


def task_names() -> set[str]:
    """Every task a worker of this app can run (after importing `TASK_MODULES`)."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    return set(app.tasks)
