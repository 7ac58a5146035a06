"""The hosted-page stand-ins: onboarding, the Checkout page with its three cards, the dashboard,
and the simulator's API over HTTP (as Stripe.js and the demo call it)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from marketplace_api.config import Settings
from marketplace_api.main import create_app
from marketplace_api.stripe_simulator import StripeSimulator

PUBLIC = "http://testserver"
KEY = {"Authorization": "Bearer sk_test_pages"}


@pytest.fixture
def sim() -> StripeSimulator:
    return StripeSimulator(seed=3, public_url=PUBLIC)


@pytest.fixture
async def http(sim: StripeSimulator, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="development",
        stripe_simulator_state_file=tmp_path / "sim.json",
    )
    app = create_app(settings)
    app.state.stripe_simulator = sim  # what the lifespan does, without a database
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as c:
        yield c


async def _account(http: httpx.AsyncClient, sim: StripeSimulator) -> str:
    created = await http.post(
        "/simulator/api/v1/accounts",
        headers=KEY,
        data={"country": "US", "controller[stripe_dashboard][type]": "express",
              "capabilities[transfers][requested]": "true",
              "capabilities[card_payments][requested]": "true"},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


async def _link(http: httpx.AsyncClient, account: str) -> str:
    link = await http.post(
        "/simulator/api/v1/account_links",
        headers=KEY,
        data={"account": account, "type": "account_onboarding",
              "refresh_url": "https://shop/refresh", "return_url": "https://shop/return"},
    )  # fmt: skip
    return str(link.json()["url"])


async def test_onboarding_page_completes_once_then_sends_to_refresh(
    http: httpx.AsyncClient, sim: StripeSimulator
) -> None:
    account = await _account(http, sim)
    url = await _link(http, account)
    page = await http.get(url)
    assert page.status_code == 200
    assert "external_account" in page.text  # what Stripe would still ask for
    done = await http.post(url)
    assert (done.status_code, done.headers["location"]) == (303, "https://shop/return")
    assert sim.state.accounts[account]["charges_enabled"] is True
    assert [e["type"] for e in sim.events_of("account.updated")] == ["account.updated"]
    again = await http.post(url)  # account links are single-use
    assert (again.status_code, again.headers["location"]) == (303, "https://shop/refresh")


async def _session(http: httpx.AsyncClient) -> dict[str, str]:
    created = await http.post(
        "/simulator/api/v1/checkout/sessions",
        headers=KEY,
        data={"mode": "payment", "line_items[0][quantity]": "2",
              "line_items[0][price_data][currency]": "usd",
              "line_items[0][price_data][unit_amount]": "1250",
              "line_items[0][price_data][product_data][name]": "Mug",
              "success_url": "https://shop/ok?s={CHECKOUT_SESSION_ID}",
              "cancel_url": "https://shop/cancel", "expires_at": str(int(time.time()) + 3600)},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    return dict(created.json())


async def test_checkout_page_declines_then_pays_and_redirects(
    http: httpx.AsyncClient, sim: StripeSimulator
) -> None:
    session = await _session(http)
    page = await http.get(session["url"])
    assert "25.00" not in page.text  # amounts are shown in minor units, never as floats
    assert "2500 USD" in page.text
    declined = await http.post(session["url"], data={"payment_method": "pm_card_chargeDeclined"})
    assert declined.status_code == 200
    assert "Your card was declined." in declined.text
    assert sim.state.checkout_sessions[session["id"]]["status"] == "open"
    paid = await http.post(session["url"], data={"payment_method": "pm_card_visa"})
    assert (paid.status_code, paid.headers["location"]) == (
        303,
        f"https://shop/ok?s={session['id']}",
    )
    done = sim.state.checkout_sessions[session["id"]]
    assert (done["status"], done["payment_status"]) == ("complete", "paid")
    intent = sim.state.payment_intents[done["payment_intent"]]
    assert (intent["status"], intent["amount"]) == ("succeeded", 2500)
    assert (await http.get(session["url"])).status_code == 410  # nothing left to pay


async def test_checkout_page_dispute_card_opens_a_dispute(
    http: httpx.AsyncClient, sim: StripeSimulator
) -> None:
    session = await _session(http)
    await http.post(session["url"], data={"payment_method": "pm_card_createDispute"})
    [dispute] = sim.state.disputes.values()
    assert (dispute["amount"], dispute["status"]) == (2500, "needs_response")
    closed = await http.post(
        f"/simulator/api/_simulator/disputes/{dispute['id']}/close", data={"outcome": "lost"}
    )
    assert closed.json()["status"] == "lost"


async def test_dashboard_shows_the_accounts_balance(
    http: httpx.AsyncClient, sim: StripeSimulator
) -> None:
    account = await _account(http, sim)
    sim.complete_onboarding(account)
    page = await http.get(f"/simulator/dashboard/{account}")
    assert page.status_code == 200
    assert "charges enabled" in page.text
    assert (await http.get("/simulator/dashboard/acct_nope")).status_code == 404
