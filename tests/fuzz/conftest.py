"""A real API process (uvicorn) on the test database, for schema fuzzing with schemathesis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from marketplace_api.models import Base

PASSWORD = "fuzz-password-123456"


@dataclass(frozen=True)
class FuzzServer:
    base_url: str
    tokens: dict[str, str]  # role -> access token


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _libpq(database_url: str) -> str:
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _truncate(database_url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with psycopg.connect(_libpq(database_url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")  # type: ignore[arg-type]


def _token(base_url: str, email: str) -> str:
    response = httpx.post(
        f"{base_url}/v1/auth/token", data={"username": email, "password": PASSWORD}
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


@pytest.fixture(scope="session")
def fuzz_server(database_url: str, engine: object) -> Iterator[FuzzServer]:
    """`engine` is requested so migrations have run before the server starts."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "STRIPE_SECRET_KEY": "",  # Stripe-backed routes answer 503 stripe_not_configured
        "STRIPE_WEBHOOK_SECRETS": "whsec_fuzz",
        "JWT_SECRET": "fuzz-" + "j" * 60,
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "RUN_WORKER_IN_PROCESS": "false",
    }
    server = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "uvicorn",
            "marketplace_api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the API server did not start")
        tokens: dict[str, str] = {}
        for role in ("buyer", "vendor"):
            email = f"fuzz-{role}@example.com"
            httpx.post(
                f"{base_url}/v1/auth/register",
                json={"email": email, "password": PASSWORD, "role": role},
            ).raise_for_status()
            tokens[role] = _token(base_url, email)
        # With a profile the vendor's routes reach their queries, not only the 409 before them.
        httpx.put(
            f"{base_url}/v1/vendor/profile",
            json={"display_name": "Fuzz Goods", "country": "US", "default_currency": "usd"},
            headers={"Authorization": f"Bearer {tokens['vendor']}"},
        ).raise_for_status()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "marketplace_api.cli",
                "create-admin",
                "fuzz-admin@example.com",
                "--password-stdin",
            ],
            input=PASSWORD + "\n",
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )
        tokens["admin"] = _token(base_url, "fuzz-admin@example.com")
        yield FuzzServer(base_url, tokens)
    finally:
        server.terminate()
        server.wait(timeout=10)
        _truncate(database_url)
