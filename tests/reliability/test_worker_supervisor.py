"""`run_worker` supervises procrastinate's worker: when it stops on its own (its LISTEN side task
failed: "stopping worker") or fails (a fetch raised) it is started again, until it is asked to
stop; a worker run with `wait=False` is not supervised."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from procrastinate.exceptions import ConnectorException

from marketplace_api.config import Settings
from marketplace_api.worker import runner as worker_module
from marketplace_api.worker.runner import run_worker


class FlakyApp:
    """procrastinate's `App` as `run_worker` uses it; its worker stops on its own, then fails,
    then runs until cancelled."""

    def __init__(self) -> None:
        self.runs = 0
        self.running = asyncio.Event()
        self.periodic_registry: Any = None

    @contextlib.contextmanager
    def replace_connector(self, connector: object) -> Iterator[None]:
        yield

    @contextlib.asynccontextmanager
    async def open_async(self) -> AsyncIterator[None]:
        yield

    async def run_worker_async(self, **options: Any) -> None:
        self.runs += 1
        if self.runs == 1:
            return  # "side task listener failed …, stopping worker"
        if self.runs == 2:
            raise ConnectorException("connection failed: the database system is shutting down")
        self.running.set()
        await asyncio.Event().wait()


@pytest.fixture(autouse=True)
def _short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "RESTART_DELAY_MIN", 0.01)


async def test_a_worker_that_stops_or_fails_on_its_own_is_started_again(
    settings: Settings, database_url: str
) -> None:
    app = FlakyApp()
    task = asyncio.create_task(
        run_worker(settings, database_url, app=app, install_signal_handlers=False)  # type: ignore[arg-type]
    )
    await asyncio.wait_for(app.running.wait(), 10)

    assert app.runs == 3
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_draining_worker_is_not_restarted(settings: Settings, database_url: str) -> None:
    app = FlakyApp()

    await asyncio.wait_for(
        run_worker(settings, database_url, app=app, wait=False, install_signal_handlers=False),  # type: ignore[arg-type]
        10,
    )

    assert app.runs == 1
