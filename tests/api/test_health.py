from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from marketplace_api.config import Settings
from marketplace_api.main import create_app
from tests.conftest import build_state


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_migration_head(client: httpx.AsyncClient) -> None:
    from marketplace_api.migrations import head_revision

    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "database": "ok", "migration": head_revision()}


async def test_readyz_fails_when_database_is_down(settings: Settings) -> None:
    # A port nothing listens on stands for a database that is down.
    dead = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    app = create_app(state=build_state(settings, dead))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        response = await http.get("/readyz")
    await dead.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_ready"


async def test_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        for cdn in ("cdn.", "unpkg", "googleapis"):
            assert cdn not in html
    docs = (await client.get("/docs")).text
    assert "/static-offline-docs/swagger-ui-bundle.js" in docs
    asset = await client.get("/static-offline-docs/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert len(asset.content) > 100_000
