"""What `marketplace-api reconcile` does (its arguments are parsed in cli.py): returns the
process's exit code."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from marketplace_api.config import Settings
from marketplace_api.db import create_engine, create_sessionmaker
from marketplace_api.errors import ProblemError
from marketplace_api.integrations.stripe import StripeGateway, build_stripe_client
from marketplace_api.reconcile.service import reconcile


async def _reconcile(
    settings: Settings, database_url: str, *, pending_minutes: int, retry_failed: bool
) -> str:
    client = build_stripe_client(settings)
    if client is None:
        raise ProblemError("STRIPE_SECRET_KEY is not set: nothing can be reconciled.")
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    try:
        report = await reconcile(
            create_sessionmaker(engine),
            StripeGateway(client),
            now=datetime.now(UTC),
            pending_payment_age=timedelta(minutes=pending_minutes),
            retry_failed=retry_failed,
        )
    finally:
        await engine.dispose()
    return report.render()


def run_reconcile(
    settings: Settings, database_url: str, *, pending_minutes: int, retry_failed: bool
) -> int:
    try:
        run = _reconcile(
            settings, database_url, pending_minutes=pending_minutes, retry_failed=retry_failed
        )
        print(asyncio.run(run))
    except ProblemError as exc:
        print(f"error: {exc.detail or exc.title}", file=sys.stderr)
        return 1
    return 0
