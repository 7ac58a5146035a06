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

`--paths` runs fresh checkouts (`POST /v1/buyer/orders`, against `bench/stripe_standin.py` at
0 ms) and `payment_intent.succeeded` deliveries the same way, one at a time: their CPU per request
without uvicorn and without other requests' contention, and, under
`py-spy record --format raw -o out.txt -- .venv/bin/python bench/inproc.py --paths`, a profile
that `bench/layers.py` splits by layer. `--paths checkout lean-checkout` adds the same checkout
through the lean reference (`bench/lean_checkout.py`, its own tables, same buyers and listing), in
the same process right after: the in-process ratio to the lean CPU. `checkout-bare` and
`webhook-bare` send the same requests through the app without its middleware.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
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
from run import (
    JWT_SECRET,
    WEBHOOK_SECRET,
    prepare_database,
    seed,
    seed_lean,
    seed_lean_payments,
    seed_payments,
    signed_event,
    stripe_standin,
    token,
)

from marketplace_api.config import Settings
from marketplace_api.db import create_engine, create_sessionmaker
from marketplace_api.deps import AppState
from marketplace_api.integrations.stripe import StripeGateway, build_stripe_client
from marketplace_api.main import create_app

Call = Callable[[], Awaitable[int]]


def asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> Call:
    return asgi_call(app, "GET", path, headers, lambda: b"")


def asgi_call(
    app: Any,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: Callable[[], bytes],
    header: Callable[[], list[tuple[bytes, bytes]]] = list,
) -> Call:
    """One request straight into the ASGI app; `body()` and `header()` make each request's own."""
    scope_template = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
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

        content = body()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": content, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        headers = [*scope_template["headers"], *header()]
        if content:
            headers.append((b"content-length", str(len(content)).encode()))
        await app(dict(scope_template, headers=headers), receive, send)
        return status

    return call


def app_state(url: str, **stripe: Any) -> tuple[Settings, AppState]:
    """The bench's settings (rate limits off, WARNING logs) and the state the app runs on."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        jwt_secret=JWT_SECRET,
        rate_limit_enabled=False,
        log_level="WARNING",
        **({"stripe_secret_key": None} | stripe),
    )
    engine = create_engine(url, pool_size=4)
    client = build_stripe_client(settings)
    state = AppState(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        stripe=StripeGateway(client) if client else None,
    )
    return settings, state


async def cpu_per_request(call: Call, requests: int) -> float:
    start = time.process_time()
    for _ in range(requests):
        status = await call()
        if status not in (200, 201):
            raise RuntimeError(f"status {status}")
    return 1000 * (time.process_time() - start) / requests


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--paths",
        nargs="*",
        choices=[
            "checkout",
            "webhook",
            "lean-checkout",
            "lean-webhook",
            "checkout-bare",
            "webhook-bare",
        ],
        help="checkouts and/or webhook deliveries (both when none is named); lean-checkout: the "
        "same checkout through bench/lean_checkout.py, in the same process (lean-webhook: the same "
        "delivery); *-bare: the same "
        "requests through the app without its middleware (what the middleware costs on them)",
    )
    args = parser.parse_args()
    url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/marketplace_bench"
    )
    await prepare_database(url)
    if args.paths is not None:
        with stripe_standin(0.0) as stripe_port:
            await hot_paths(url, stripe_port, args.requests, args.paths or ["checkout", "webhook"])
        return
    settings, state = app_state(url)
    engine = state.engine
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


async def hot_paths(url: str, stripe_port: int, requests: int, paths: list[str]) -> None:
    """Sequential checkouts, then sequential `payment_intent.succeeded` deliveries."""
    settings, state = app_state(
        url,
        stripe_secret_key="sk_test_bench",  # noqa: S106 - the stand-in takes any key
        stripe_api_base=f"http://127.0.0.1:{stripe_port}",
        stripe_max_network_retries=0,
        stripe_webhook_secrets=[WEBHOOK_SECRET],
    )
    engine = state.engine
    app = create_app(settings, state=state)
    seed_ = await seed(engine, buyers=8)
    checkout_body = json.dumps(
        {"items": [{"listing_id": str(seed_.listing_id), "quantity": 1}]}
    ).encode()
    buyer = [(b"authorization", f"Bearer {seed_.buyer_tokens[0]}".encode())]
    json_type = [(b"content-type", b"application/json")]
    checkout = asgi_call(app, "POST", "/v1/buyer/orders", buyer + json_type, lambda: checkout_body)
    payments = iter(await seed_payments(engine, seed_, 2 * requests + 400))
    signature: list[tuple[bytes, bytes]] = []

    def event_body() -> bytes:
        payment_id, pi_id = next(payments)
        body, sig = signed_event(payment_id, pi_id, f"evt_inproc_{pi_id}")
        signature[:] = [(b"stripe-signature", sig.encode())]
        return body

    bare = create_app(settings, state=state)
    bare.user_middleware.clear()

    def webhook(app: Any) -> Call:
        return asgi_call(
            app, "POST", "/webhooks/stripe", json_type, event_body, header=lambda: signature
        )

    calls = {
        "checkout": ("POST /v1/buyer/orders", checkout),
        "checkout-bare": (
            "POST /v1/buyer/orders, no middleware",
            asgi_call(bare, "POST", "/v1/buyer/orders", buyer + json_type, lambda: checkout_body),
        ),
        "webhook": ("payment_intent.succeeded", webhook(app)),
        "webhook-bare": ("payment_intent.succeeded, no middleware", webhook(bare)),
    }
    lean_pool = None
    if {"lean-checkout", "lean-webhook"} & set(paths):
        lean_app, lean_pool = await lean_checkout_app(url, stripe_port, seed_)
        lean_body = json.dumps({"listing_id": str(seed_.listing_id), "quantity": 1}).encode()
        lean = asgi_call(lean_app, "POST", "/checkout", buyer + json_type, lambda: lean_body)
        calls["lean-checkout"] = ("lean checkout (bench/lean_checkout.py)", lean)
        lean_payments = iter(await seed_lean_payments(engine, seed_, requests + 400))

        def lean_event_body() -> bytes:
            payment_id, pi_id = next(lean_payments)
            body, sig = signed_event(payment_id, pi_id, f"evt_inproc_lean_{pi_id}")
            signature[:] = [(b"stripe-signature", sig.encode())]
            return body

        calls["lean-webhook"] = (
            "lean webhook (bench/lean_checkout.py)",
            asgi_call(
                lean_app, "POST", "/webhook", json_type, lean_event_body, header=lambda: signature
            ),
        )
    for name, call in (calls[path] for path in paths):
        await cpu_per_request(call, 200)  # warm-up
        # As the served app does at the end of its startup (main.py): without it, one full
        # collection over the long-lived objects (≈ 0.2 s here) lands in a measured run.
        gc.collect()
        gc.freeze()
        print(f"{await cpu_per_request(call, requests):7.3f} ms  {name}")
    if lean_pool is not None:
        await lean_pool.close()
    await engine.dispose()


async def lean_checkout_app(url: str, stripe_port: int, seed_: Any) -> tuple[Any, Any]:
    """The lean reference's app on its own tables (same buyers, tokens and listing), its pool
    opened here (the ASGI calls skip the lifespan)."""
    import asyncpg

    await seed_lean(url, seed_)
    os.environ.update(
        LEAN_DATABASE_URL=url,
        STRIPE_API_BASE=f"http://127.0.0.1:{stripe_port}",
        JWT_SECRET=JWT_SECRET,
        WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    import lean_checkout

    app = lean_checkout.create_app()
    pool = await asyncpg.create_pool(
        url.replace("postgresql+asyncpg://", "postgresql://"), min_size=4, max_size=4
    )
    app.state.pool = pool
    return app, pool


if __name__ == "__main__":
    asyncio.run(main())
