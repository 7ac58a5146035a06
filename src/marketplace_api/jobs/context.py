"""What a task needs (settings, database, Stripe), built once per worker process.

The worker passes it to tasks as `context.additional_context["jobs"]`; tasks declared with
`pass_context=True` read it with `jobs_context(context)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from procrastinate import JobContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from marketplace_api.config import Settings
from marketplace_api.db import create_engine, create_sessionmaker
from marketplace_api.integrations.stripe import StripeGateway, build_stripe_client

CONTEXT_KEY = "jobs"


@dataclass
class JobsContext:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    stripe: StripeGateway | None  # None when STRIPE_SECRET_KEY is unset

    @classmethod
    def create(cls, settings: Settings, database_url: str, *, pool_size: int = 5) -> JobsContext:
        # Pre-ping: a job may run long after the pooled connection was last used (a database
        # restart in between would fail the job on it); a round trip per job is cheap.
        engine = create_engine(
            database_url, pool_size=pool_size, max_overflow=pool_size, pre_ping=True
        )
        client = build_stripe_client(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            stripe=StripeGateway(client) if client else None,
        )

    async def aclose(self) -> None:
        await self.engine.dispose()


def jobs_context(context: JobContext) -> JobsContext:
    value = context.additional_context.get(CONTEXT_KEY)
    if not isinstance(value, JobsContext):
        raise RuntimeError(
            "task run without the jobs context: start workers with marketplace_api.worker.runner"
        )
    return value
