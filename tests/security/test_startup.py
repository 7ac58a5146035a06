"""Production refuses unsafe settings on the real startup path, and forwarded headers are believed
only from configured proxies.

`marketplace-api serve` (what the Dockerfile runs) reads the settings from the environment: an
unsafe one stops it before uvicorn starts, with a message naming the setting. The app factory
(`create_app()`, what uvicorn's workers call) refuses the same. Then the client address: uvicorn,
configured as `serve` configures it, must not let a client choose the address the rate limits see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api import cli
from marketplace_api.config import get_settings
from marketplace_api.deps import get_session
from marketplace_api.main import create_app
from tests.conftest import build_state, make_settings

PRODUCTION_ENV = {
    "ENVIRONMENT": "production",
    "DATABASE_URL": "postgresql+asyncpg://app@db.invalid/marketplace",
    "JWT_SECRET": "Zq8vN3kLmR1tXw7yBc5dHf2gJp9sUe4a6oIi0",
    "STRIPE_SECRET_KEY": "sk_live_51RealisticKey0123456789",
    "STRIPE_WEBHOOK_SECRETS": "whsec_Pl4tf0rmS1gn1ngS3cr3tV4lu3xyz0123",
    "FRONTEND_URL": "https://shop.example",
    "CORS_ORIGINS": "https://shop.example",
}
# Variables a developer's shell may have set that would change what is tested.
_UNSET = ("TRUSTED_PROXIES", "DOCS_ENABLED", "STRIPE_ALLOW_TEST_KEYS", "METRICS_TOKEN")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name in _UNSET:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    return calls


UNSAFE = [
    pytest.param({"JWT_SECRET": "a" * 32}, "JWT_SECRET", id="jwt-secret-32-a"),
    pytest.param({"JWT_SECRET": "change-me"}, "JWT_SECRET", id="jwt-secret-placeholder"),
    pytest.param({"JWT_SECRET": "Zq8vN3kLmR1tXw7y"}, "JWT_SECRET", id="jwt-secret-short"),
    pytest.param(
        {"STRIPE_SECRET_KEY": "sk_test_51AbcDefGhiJklMnoPqr"}, "STRIPE_SECRET_KEY", id="test-key"
    ),
    pytest.param({"STRIPE_WEBHOOK_SECRETS": "x"}, "STRIPE_WEBHOOK_SECRETS", id="webhook-secret-x"),
    pytest.param({"JWT_ALGORITHM": "none"}, "JWT_ALGORITHM", id="jwt-alg-none"),
    pytest.param({"CORS_ORIGINS": "*"}, "CORS_ORIGINS", id="cors-star"),
    pytest.param({"STRIPE_API_BASE": "http://stripe-mock:12111"}, "STRIPE_API_BASE", id="http-api"),
]


@pytest.mark.parametrize(("override", "named"), UNSAFE)
def test_serve_refuses_unsafe_production_settings_naming_them(
    environment: pytest.MonkeyPatch,
    uvicorn_calls: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    override: dict[str, str],
    named: str,
) -> None:
    for name, value in {**PRODUCTION_ENV, **override}.items():
        environment.setenv(name, value)
    assert cli.main(["serve", "--no-migrate"]) == 2
    assert uvicorn_calls == []
    error = capsys.readouterr().err
    assert named in error
    for secret in override.values():
        if len(secret) > 1:
            assert secret not in error.replace(named, "")


@pytest.mark.parametrize(("override", "named"), UNSAFE)
def test_app_factory_refuses_unsafe_production_settings(
    environment: pytest.MonkeyPatch, override: dict[str, str], named: str
) -> None:
    for name, value in {**PRODUCTION_ENV, **override}.items():
        environment.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        create_app()
    assert named in str(info.value)


def test_serve_starts_in_production_with_safe_settings_and_trusts_no_proxy(
    environment: pytest.MonkeyPatch, uvicorn_calls: list[dict[str, Any]]
) -> None:
    for name, value in PRODUCTION_ENV.items():
        environment.setenv(name, value)
    assert cli.main(["serve", "--no-migrate"]) == 0
    [options] = uvicorn_calls
    assert options["proxy_headers"] is False
    assert "forwarded_allow_ips" not in options
    app = create_app()
    assert app.openapi_url is None  # production: no docs unless DOCS_ENABLED


@pytest.mark.parametrize("environment_name", ["development", "test"])
def test_serve_starts_in_development_and_test_with_defaults(
    environment: pytest.MonkeyPatch,
    uvicorn_calls: list[dict[str, Any]],
    database_url: str,
    environment_name: str,
) -> None:
    for name in PRODUCTION_ENV:
        environment.delenv(name, raising=False)
    environment.setenv("ENVIRONMENT", environment_name)
    environment.setenv("DATABASE_URL", database_url)
    assert cli.main(["serve", "--no-migrate"]) == 0
    [options] = uvicorn_calls
    assert options["proxy_headers"] is False
    assert create_app().openapi_url == "/openapi.json"


def test_serve_hands_the_trusted_proxies_to_uvicorn(
    environment: pytest.MonkeyPatch, uvicorn_calls: list[dict[str, Any]]
) -> None:
    for name, value in PRODUCTION_ENV.items():
        environment.setenv(name, value)
    environment.setenv("TRUSTED_PROXIES", "10.0.0.5, 10.1.0.0/16")
    assert cli.main(["serve", "--no-migrate"]) == 0
    [options] = uvicorn_calls
    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] == "10.0.0.5,10.1.0.0/16"


# --- whose X-Forwarded-For is believed ---------------------------------------------------------


async def _served(
    engine: AsyncEngine, session: AsyncSession, database_url: str, trusted: list[str]
) -> Any:
    """The app as uvicorn runs it under `serve`: wrapped by uvicorn's own Config.load()."""
    settings = make_settings(database_url, trusted_proxies=trusted, rate_limit_login="1/minute")
    app = create_app(state=build_state(settings, engine))

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    config = uvicorn.Config(app, **cli.proxy_options(settings))
    config.load()
    return config.loaded_app


async def _login_from(app: Any, peer: str, forwarded_for: str, email: str) -> int:
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.post(
            "/v1/auth/token",
            data={"username": email, "password": "guess"},
            headers={"X-Forwarded-For": forwarded_for},
        )
    return response.status_code


async def test_a_client_cannot_choose_its_own_address(
    engine: AsyncEngine, session: AsyncSession, database_url: str
) -> None:
    app = await _served(engine, session, database_url, trusted=[])
    # Each attempt claims another address; the budget of one attempt is the peer's all the same.
    first = await _login_from(app, "127.0.0.1", "198.51.100.1", "a@example.com")
    second = await _login_from(app, "127.0.0.1", "198.51.100.2", "b@example.com")
    assert (first, second) == (401, 429)


async def test_a_configured_proxys_forwarded_address_is_honoured(
    engine: AsyncEngine, session: AsyncSession, database_url: str
) -> None:
    app = await _served(engine, session, database_url, trusted=["10.0.0.5"])
    # Two clients behind the load balancer: a budget each.
    assert await _login_from(app, "10.0.0.5", "198.51.100.1", "a@example.com") == 401
    assert await _login_from(app, "10.0.0.5", "198.51.100.2", "b@example.com") == 401
    assert await _login_from(app, "10.0.0.5", "198.51.100.1", "c@example.com") == 429
    # A peer that is not the proxy: its header is ignored, its own address counted.
    assert await _login_from(app, "203.0.113.9", "198.51.100.3", "d@example.com") == 401
    assert await _login_from(app, "203.0.113.9", "198.51.100.4", "e@example.com") == 429


def test_serve_keeps_the_simulator_on_loopback_unless_told(
    environment: pytest.MonkeyPatch,
    uvicorn_calls: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The simulator's pages take no key: `auto` never serves them beyond this machine."""
    for name in PRODUCTION_ENV:
        environment.delenv(name, raising=False)
    environment.setenv("ENVIRONMENT", "development")
    assert cli.main(["serve", "--no-migrate", "--host", "0.0.0.0"]) == 2  # noqa: S104
    assert uvicorn_calls == []
    assert "STRIPE_SIMULATOR=on" in capsys.readouterr().err
