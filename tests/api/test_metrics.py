from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace_api.main import create_app
from tests.conftest import build_state, make_settings

TOKEN = "metrics-token-for-tests"


@pytest.fixture
async def metrics_client(
    database_url: str, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(state=build_state(make_settings(database_url, metrics_token=TOKEN), engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_metrics_are_off_without_a_configured_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 404


async def test_metrics_need_the_token(metrics_client: httpx.AsyncClient) -> None:
    assert (await metrics_client.get("/metrics")).status_code == 401
    wrong = await metrics_client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "not_authenticated"


async def test_metrics_expose_request_latency_by_operation(
    metrics_client: httpx.AsyncClient,
) -> None:
    await metrics_client.get("/healthz")
    await metrics_client.get("/v1/platform/config")
    response = await metrics_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    text = response.text
    assert (
        'marketplace_http_request_duration_seconds_count{method="GET",'
        'operation="health-healthz",status="200"}' in text
    )
    assert 'operation="platform-get_config"' in text
    assert 'marketplace_db_pool_connections{state="checked_out"}' in text
