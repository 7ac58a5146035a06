"""CPU per request of the app itself, in one process, variants alternated: the A/B for the layers
around the domain code (middleware, the token check, the user load, metrics, logging).

    BENCH_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/my_bench \\
        .venv/bin/python bench/inproc.py [--requests 2000] [--rounds 5]

The ASGI app is called directly, one request at a time (no uvicorn, no sockets, no client), and
the process's CPU time (`time.process_time`) is divided by the requests. Variants run in turns,
`--rounds` times each, in the same process: on a loaded machine only their difference, in the
same run, means something. Prints the median of the rounds per variant.

Variants: `full` is the app as served; `bare` is the same app without its middleware (what the
middleware stack costs); `/v1/auth/me` adds the token check and the user load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import JWT_SECRET, prepare_database, token

from marketplace_api.config import Settings
from marketplace_api.db import create_engine, create_sessionmaker
from marketplace_api.deps import AppState
from marketplace_api.main import create_app

Call = Callable[[], Awaitable[int]]


def asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> Call:
    scope_template = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def call() -> int:
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope_template, headers=list(scope_template["headers"])), receive, send)
        return status

    return call


async def cpu_per_request(call: Call, requests: int) -> float:
    start = time.process_time()
    for _ in range(requests):
        status = await call()
        if status != 200:
            raise RuntimeError(f"status {status}")
    return 1000 * (time.process_time() - start) / requests


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/marketplace_bench"
    )
    await prepare_database(url)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        jwt_secret=JWT_SECRET,
        rate_limit_enabled=False,
        log_level="WARNING",
        stripe_secret_key=None,
    )
    engine = create_engine(url, pool_size=4)
    state = AppState(
        settings=settings, engine=engine, sessionmaker=create_sessionmaker(engine), stripe=None
    )
    user_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, email, password_hash, role) VALUES (:id, :e, 'x', 'buyer')"
            ),
            {"id": user_id, "e": f"{user_id}@bench.example"},
        )
    auth = [(b"authorization", f"Bearer {token(user_id, 'buyer')}".encode())]
    full = create_app(settings, state=state)
    bare = create_app(settings, state=state)
    bare.user_middleware.clear()
    variants = {
        "GET /healthz, full app": asgi_get(full, "/healthz", []),
        "GET /healthz, no middleware": asgi_get(bare, "/healthz", []),
        "GET /v1/auth/me, full app": asgi_get(full, "/v1/auth/me", auth),
        "GET /v1/auth/me, no middleware": asgi_get(bare, "/v1/auth/me", auth),
    }
    for call in variants.values():  # warm-up: routes' caches, prepared statements
        await cpu_per_request(call, 200)
    rounds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, call in variants.items():
            rounds[name].append(await cpu_per_request(call, args.requests))
    for name, values in rounds.items():
        spread = f"{min(values):.3f}–{max(values):.3f}"
        print(f"{statistics.median(values):7.3f} ms  ({spread})  {name}")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
