from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from marketplace_api import migrations
from marketplace_api.deps import AppStateDep
from marketplace_api.errors import ServiceUnavailable, problem_responses

router = APIRouter(tags=["health"])


class NotReady(ServiceUnavailable):
    code = "not_ready"
    title = "Service not ready"


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    database: Literal["ok"] = "ok"
    migration: str


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is at the latest migration",
    responses=problem_responses(NotReady),
)
async def readyz(state: AppStateDep) -> Readiness:
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            current = await migrations.current_revision(connection)
    except Exception as exc:  # any failure to reach the database means "not ready"
        raise NotReady("The database is unreachable.") from exc
    head = migrations.head_revision()
    if current != head:
        raise NotReady(f"Database schema is at {current}, expected {head}: run migrations.")
    return Readiness(migration=current or "")
