"""`GET /metrics` for Prometheus: disabled unless METRICS_TOKEN is set; then a bearer token."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from sqlalchemy.pool import QueuePool

from marketplace_api.deps import AppStateDep
from marketplace_api.errors import NotFound, Unauthorized
from marketplace_api.metrics import DB_POOL, PAYMENTS
from marketplace_api.payments.models import Payment

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request, state: AppStateDep) -> Response:
    expected = state.settings.metrics_token
    if expected is None:
        raise NotFound()
    presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(presented.encode(), expected.get_secret_value().encode()):
        raise Unauthorized("Send the metrics token as `Authorization: Bearer <token>`.")
    await _measure(state)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _measure(state: AppStateDep) -> None:
    pool = state.engine.pool
    if isinstance(pool, QueuePool):
        DB_POOL.labels("checked_out").set(pool.checkedout())
        DB_POOL.labels("idle").set(pool.checkedin())
        DB_POOL.labels("overflow").set(max(pool.overflow(), 0))
    async with state.sessionmaker() as session:
        rows = await session.execute(select(Payment.status, func.count()).group_by(Payment.status))
        PAYMENTS.clear()
        for status, count in rows.all():
            PAYMENTS.labels(str(status)).set(count)
