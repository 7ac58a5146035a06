"""Real API processes for the process-kill and database-restart suites: uvicorn processes forked
by a zygote that imported the app once, configured by environment variables, waited for on
/healthz."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from marketplace_api.config import Settings
from marketplace_api.crashpoints import ENV_VAR as CRASH_ENV_VAR

STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a subprocess these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env.update(
        ENVIRONMENT=settings.environment.value,
        DATABASE_URL=str(settings.database_url),
        STRIPE_SECRET_KEY=settings.stripe_secret_key.get_secret_value()
        if settings.stripe_secret_key
        else "",
        STRIPE_API_BASE=settings.stripe_api_base,
        STRIPE_MAX_NETWORK_RETRIES=str(settings.stripe_max_network_retries),
        STRIPE_TIMEOUT_SECONDS="10",
        JWT_SECRET=settings.jwt_secret.get_secret_value(),
        FRONTEND_URL=settings.frontend_url,
        LOG_FORMAT="text",
        LOG_LEVEL="WARNING",
        RATE_LIMIT_ENABLED="false",
        RUN_WORKER_IN_PROCESS="false",
    )
    env.pop(CRASH_ENV_VAR, None)
    env.update(extra)
    return env


@dataclass
class ForkedApi:
    """An API process forked by the `Zygote`."""

    pid: int
    url: str

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait_dead(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise AssertionError(f"API process {self.pid} is still alive")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.wait_dead()


class Zygote:
    """`tests/reliability/zygote.py` as a subprocess: imports the app once, forks API processes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if not ready:
            raise RuntimeError("the zygote did not start")

    def spawn(self, env: dict[str, str]) -> ForkedApi:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        port = free_port()
        self.process.stdin.write(json.dumps({"port": port, "env": env}).encode() + b"\n")
        self.process.stdin.flush()
        pid = json.loads(self.process.stdout.readline())["pid"]
        api = ForkedApi(pid, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if not api.alive():
                raise RuntimeError("the forked API exited while starting")
            try:
                if httpx.get(f"{api.url}/healthz", timeout=1).status_code == 200:
                    return api
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        api.stop()
        raise RuntimeError("the forked API did not start in time")

    def close(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(10)
        self.process.stdout.close()
