"""Development without Stripe keys: the app runs on the simulator (hosted pages, webhook
endpoints registered, events delivered in the background), and the demo's whole story passes
in-process. Production refuses the simulator."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import NoMatchFound

from marketplace_api.config import Settings
from marketplace_api.demo import Demo
from marketplace_api.main import create_app
from tests.conftest import make_settings

PUBLIC = "http://testserver"


def dev_settings(database_url: str, state_file: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "development",
        "stripe_secret_key": None,
        "stripe_webhook_secrets": [],
        "stripe_simulator_state_file": state_file,
        "stripe_simulator_public_url": PUBLIC,
        "rate_limit_enabled": False,
        **overrides,
    }
    return make_settings(database_url, **values)


async def test_development_without_keys_runs_the_whole_story_on_the_simulator(
    database_url: str,
    committed_engine: AsyncEngine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = dev_settings(database_url, tmp_path / "sim.json")
    assert settings.use_stripe_simulator
    app = create_app(settings)
    lines: list[str] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as http:
            demo = Demo(http, out=lines.append, timeout=20)
            ok = await demo.run()
        sim = app.state.stripe_simulator
        endpoints = list(sim.state.webhook_endpoints.values())
    assert ok, "\n".join(lines)
    assert "All checks passed." in lines
    startup = capsys.readouterr().out
    assert "built-in Stripe Connect simulator, not Stripe" in startup  # the startup log
    assert f"webhooks to {PUBLIC}/webhooks/stripe" in startup
    assert {e["url"] for e in endpoints} == {f"{PUBLIC}/webhooks/stripe"}
    assert len(endpoints) == 2  # platform and Connect
    # Two vendors; the cart paid with the Payment Element and the second order on the Checkout
    # page (its Payment Element PaymentIntent left unpaid, as a buyer would).
    assert len(sim.state.accounts) == 2
    assert sorted(pi["status"] for pi in sim.state.payment_intents.values()) == [
        "requires_payment_method",
        "succeeded",
        "succeeded",
    ]
    assert [d["status"] for d in sim.state.disputes.values()] == ["lost"]
    assert (tmp_path / "sim.json").exists()


async def test_a_restart_keeps_the_simulators_state_and_endpoints(
    database_url: str, committed_engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = dev_settings(database_url, tmp_path / "sim.json")
    first = create_app(settings)
    async with first.router.lifespan_context(first):
        endpoint_ids = set(first.state.stripe_simulator.state.webhook_endpoints)
        secrets = {
            s.get_secret_value() for s in first.state.marketplace.settings.stripe_webhook_secrets
        }
    second = create_app(settings)
    async with second.router.lifespan_context(second):
        assert set(second.state.stripe_simulator.state.webhook_endpoints) == endpoint_ids
        again = {
            s.get_secret_value() for s in second.state.marketplace.settings.stripe_webhook_secrets
        }
    assert again == secrets
    assert len(secrets) == 2


async def test_hosted_pages_exist_only_in_simulator_mode(database_url: str, tmp_path: Path) -> None:
    with_keys = create_app(make_settings(database_url, environment="development"))
    with pytest.raises(NoMatchFound):
        with_keys.url_path_for("checkout_page", session_id="cs_x")
    simulated = create_app(dev_settings(database_url, tmp_path / "s.json"))
    assert simulated.url_path_for("checkout_page", session_id="cs_x") == "/simulator/checkout/cs_x"
    assert "/simulator" not in str(simulated.openapi())


@pytest.mark.parametrize("choice", ["auto", "on", "off"])
def test_only_development_without_a_key_or_on_uses_the_simulator(choice: str) -> None:
    def settings(**values: object) -> Settings:
        return Settings(_env_file=None, stripe_simulator=choice, **values)  # type: ignore[arg-type, call-arg]

    assert settings(environment="development").use_stripe_simulator is (choice != "off")
    assert settings(
        environment="development", stripe_secret_key="sk_test_real"
    ).use_stripe_simulator is (choice == "on")
    assert settings(environment="test").use_stripe_simulator is (choice == "on")


def test_production_refuses_to_start_with_the_simulator() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment="production",
            stripe_simulator="on",
            jwt_secret="x" * 40,
            stripe_secret_key="sk_live_realkey",
            stripe_webhook_secrets="whsec_real",
            database_url="postgresql+asyncpg://db/x",
        )
    assert "STRIPE_SIMULATOR" in str(caught.value)
    production = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        jwt_secret="x" * 40,
        stripe_secret_key="sk_live_realkey",
        stripe_webhook_secrets="whsec_real",
        database_url="postgresql+asyncpg://db/x",
    )
    assert production.use_stripe_simulator is False
