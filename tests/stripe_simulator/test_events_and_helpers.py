"""Events as Stripe sends them: signed so the service's own verification accepts them, routed
to platform or Connect endpoints; test cards, disputes, refunds failing, time and payouts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import stripe

from marketplace_api.integrations.stripe import StripeGateway, StripeRequestRejected
from marketplace_api.stripe_simulator import StripeSimulator
from marketplace_api.stripe_simulator.core import DAY
from marketplace_api.webhooks.exceptions import InvalidSignature
from marketplace_api.webhooks.signature import verify_event
from tests.stripe_simulator.scenario import onboarded_account

URL = "https://api.shop/webhooks/stripe"


@pytest.fixture
def secrets(sim: StripeSimulator) -> dict[str, str]:
    return {
        "platform": sim.add_webhook_endpoint(URL, connect=False),
        "connect": sim.add_webhook_endpoint(URL, connect=True),
    }


async def test_every_delivery_verifies_with_its_endpoints_secret_only(
    gateway: StripeGateway, sim: StripeSimulator, secrets: dict[str, str]
) -> None:
    account = await onboarded_account(gateway, sim)
    intent = await gateway.create_payment_intent(
        amount=2000,
        currency="usd",
        metadata={"payment_id": "p"},
        idempotency_key="p",
        application_fee_amount=200,
        transfer_destination=account.id,
    )
    sim.confirm_payment_intent(intent.id)
    deliveries = sim.take_deliveries()
    assert deliveries
    for delivery in deliveries:
        right = secrets["connect" if delivery.account else "platform"]
        wrong = secrets["platform" if delivery.account else "connect"]
        headers = delivery.headers()
        event = verify_event(delivery.payload, headers["Stripe-Signature"], [right], 300)
        assert event["id"] == delivery.event_id
        assert event["type"] == delivery.type
        with pytest.raises(InvalidSignature):
            verify_event(delivery.payload, headers["Stripe-Signature"], [wrong], 300)
    assert sim.take_deliveries() == []


async def test_connect_events_carry_the_account_and_go_to_the_connect_endpoint(
    gateway: StripeGateway, sim: StripeSimulator, secrets: dict[str, str]
) -> None:
    account = await onboarded_account(gateway, sim)
    by_type = {(d.type, d.account) for d in sim.take_deliveries()}
    assert ("account.updated", account.id) in by_type
    assert ("capability.updated", account.id) in by_type
    direct = await gateway.create_payment_intent(
        amount=1000,
        currency="usd",
        metadata={},
        idempotency_key="d",
        stripe_account=account.id,
        application_fee_amount=100,
    )
    sim.confirm_payment_intent(direct.id)
    routed = {(d.type, d.account) for d in sim.take_deliveries()}
    assert ("payment_intent.succeeded", account.id) in routed  # direct: a Connect event
    assert ("application_fee.created", None) in routed  # the fee is the platform's
    event = sim.events_of("payment_intent.succeeded")[-1]
    assert event["account"] == account.id
    assert event["data"]["object"]["id"] == direct.id


async def test_an_endpoint_gets_only_its_subscribed_types(sim: StripeSimulator) -> None:
    sim.add_webhook_endpoint(URL, connect=False, enabled_events=["payment_intent.canceled"])
    intent = sim.handle(
        httpx.Request(
            "POST",
            "https://api.stripe.com/v1/payment_intents",
            headers={"Authorization": "Bearer sk_test_x"},
            content=b"amount=1000&currency=usd",
        )
    ).json()
    assert sim.take_deliveries() == []
    sim.handle(
        httpx.Request(
            "POST",
            f"https://api.stripe.com/v1/payment_intents/{intent['id']}/cancel",
            headers={"Authorization": "Bearer sk_test_x"},
        )
    )
    assert [d.type for d in sim.take_deliveries()] == ["payment_intent.canceled"]


async def test_test_cards_behave_like_stripes(gateway: StripeGateway, sim: StripeSimulator) -> None:
    async def intent(key: str) -> str:
        created = await gateway.create_payment_intent(
            amount=1500, currency="eur", metadata={}, idempotency_key=key
        )
        return str(created.id)

    declined = sim.confirm_payment_intent(await intent("a"), "pm_card_chargeDeclined")
    assert declined["status"] == "requires_payment_method"
    assert declined["last_payment_error"]["decline_code"] == "generic_decline"
    assert sim.state.charges[declined["latest_charge"]]["status"] == "failed"
    retried = sim.confirm_payment_intent(declined["id"], "pm_card_visa")
    assert retried["status"] == "succeeded"
    assert retried["amount_received"] == 1500

    disputed = sim.confirm_payment_intent(await intent("b"), "pm_card_createDispute")
    charge = sim.state.charges[disputed["latest_charge"]]
    dispute = sim.state.disputes[charge["dispute"]]
    assert (dispute["status"], dispute["amount"], dispute["payment_intent"]) == (
        "needs_response",
        1500,
        disputed["id"],
    )
    types = [e["type"] for e in sim.events_of()]
    assert "charge.dispute.created" in types
    assert "charge.dispute.funds_withdrawn" in types
    lost = sim.close_dispute(dispute["id"], won=False)
    assert lost["status"] == "lost"
    assert sim.events_of("charge.dispute.closed")[-1]["data"]["object"]["status"] == "lost"
    # platform: +1500 (declined: nothing) +1500 - 1500 withdrawn, never reinstated
    assert sim.balances(None)["eur"] == {"available": -1500, "pending": 3000}


async def test_a_won_dispute_reinstates_the_funds(
    gateway: StripeGateway, sim: StripeSimulator
) -> None:
    created = await gateway.create_payment_intent(
        amount=1500, currency="usd", metadata={}, idempotency_key="a"
    )
    intent = sim.confirm_payment_intent(created.id, "pm_card_visa")
    dispute = sim.open_dispute(intent["latest_charge"])
    sim.close_dispute(dispute["id"], won=True)
    assert sim.events_of("charge.dispute.funds_reinstated")
    assert sum(sim.balances(None)["usd"].values()) == 1500


async def test_a_refund_that_fails_later_restores_the_charge(
    gateway: StripeGateway, sim: StripeSimulator
) -> None:
    created = await gateway.create_payment_intent(
        amount=3000, currency="usd", metadata={}, idempotency_key="a"
    )
    sim.confirm_payment_intent(created.id)
    refund = await gateway.create_refund(
        payment_intent=created.id,
        amount=1000,
        reason="requested_by_customer",
        metadata={},
        idempotency_key="r",
    )
    failed = sim.fail_refund(refund.id)
    assert failed["status"] == "failed"
    charge = sim.state.charges[refund.charge]
    assert charge["amount_refunded"] == 0
    assert {"refund.failed", "refund.updated"} <= {e["type"] for e in sim.events_of()}


async def test_time_makes_funds_available_pays_out_and_expires_sessions(
    gateway: StripeGateway, sim: StripeSimulator
) -> None:
    account = await onboarded_account(gateway, sim)
    created = await gateway.create_payment_intent(
        amount=5000,
        currency="usd",
        metadata={},
        idempotency_key="a",
        application_fee_amount=500,
        transfer_destination=account.id,
    )
    sim.confirm_payment_intent(created.id)
    assert sim.balances(account.id)["usd"] == {"available": 0, "pending": 4500}
    import time

    session = await gateway.create_checkout_session(
        currency="usd",
        line_items=[("x", 1000, 1)],
        client_reference_id="c",
        metadata={},
        success_url="https://s",
        cancel_url="https://c",
        expires_at=int(time.time()) + 3600,
        idempotency_key="cs",
    )
    events = sim.advance_time(2 * DAY)
    assert sim.state.checkout_sessions[session.id]["status"] == "expired"
    assert {"checkout.session.expired", "payout.created"} <= {e["type"] for e in events}
    payout = next(iter(sim.state.payouts.values()))
    assert (payout["amount"], sim.state.owner[payout["id"]]) == (4500, account.id)
    assert sim.balances(account.id)["usd"]["available"] == 0
    later = sim.advance_time(DAY)
    assert [e["type"] for e in later] == ["payout.paid"]
    assert later[0]["account"] == account.id


async def test_state_survives_a_restart_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    first = StripeSimulator(state_file=path, seed=1)
    secret = first.add_webhook_endpoint(URL, connect=False)
    request = httpx.Request(
        "POST",
        "https://api.stripe.com/v1/payment_intents",
        headers={"Authorization": "Bearer sk_test_x", "Idempotency-Key": "k"},
        content=b"amount=1000&currency=usd",
    )
    created = first.handle(request).json()
    second = StripeSimulator(state_file=path, seed=2)
    assert second.state.payment_intents[created["id"]]["amount"] == 1000
    assert second.handle(request).headers["Idempotent-Replayed"] == "true"
    assert next(iter(second.state.private.values()))["secret"] == secret


async def test_a_refused_refund_changes_nothing(
    gateway: StripeGateway, sim: StripeSimulator
) -> None:
    account = await onboarded_account(gateway, sim)
    created = await gateway.create_payment_intent(
        amount=4000,
        currency="usd",
        metadata={},
        idempotency_key="a",
        application_fee_amount=400,
        transfer_destination=account.id,
    )
    intent = sim.confirm_payment_intent(created.id)
    charge = sim.state.charges[intent["latest_charge"]]
    # The platform took the whole destination transfer back by hand first.
    await gateway.create_transfer_reversal(
        charge["transfer"], amount=4000, metadata={}, idempotency_key="manual"
    )
    balances = (sim.balances(None), sim.balances(account.id))
    with pytest.raises(StripeRequestRejected):
        await gateway.create_refund(
            payment_intent=created.id,
            amount=1000,
            reason="requested_by_customer",
            metadata={},
            idempotency_key="r",
            reverse_transfer=True,
        )
    assert sim.state.refunds == {}
    assert sim.state.charges[charge["id"]]["amount_refunded"] == 0
    assert (sim.balances(None), sim.balances(account.id)) == balances


async def test_pending_deliveries_post_signed_to_an_asgi_app(sim: StripeSimulator) -> None:
    secret = sim.add_webhook_endpoint(URL, connect=False)
    received: list[dict[str, object]] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        body = (await receive())["body"]
        headers = dict(scope["headers"])
        received.append(
            verify_event(body, headers[b"stripe-signature"].decode(), [secret], 300)
            | {"path": scope["path"]}
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sim.handle(
        httpx.Request(
            "POST",
            "https://api.stripe.com/v1/payment_intents",
            headers={"Authorization": "Bearer sk_test_x"},
            content=b"amount=1000&currency=usd",
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        answers = await sim.deliver_pending(client)
    assert [a.status_code for a in answers] == [200]
    assert [(e["type"], e["path"]) for e in received] == [
        ("payment_intent.created", "/webhooks/stripe")
    ]
    assert sim.pending == []


async def test_an_application_fee_refunded_by_itself_moves_it_back_to_the_vendor(
    client: stripe.StripeClient, gateway: StripeGateway, sim: StripeSimulator
) -> None:
    account = await onboarded_account(gateway, sim)
    created = await gateway.create_payment_intent(
        amount=2000,
        currency="usd",
        metadata={},
        idempotency_key="a",
        application_fee_amount=300,
        transfer_destination=account.id,
    )
    charge = sim.state.charges[sim.confirm_payment_intent(created.id)["latest_charge"]]
    fee_id = charge["application_fee"]
    refund = await client.v1.application_fees.refunds.create_async(fee_id, params={"amount": 100})
    assert (refund.amount, refund.fee) == (100, fee_id)
    assert sim.state.application_fees[fee_id]["amount_refunded"] == 100
    assert sim.events_of("application_fee.refunded")[-1]["data"]["object"]["id"] == fee_id
    assert sim.balances(account.id)["usd"]["pending"] == 2000 - 300 + 100
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.application_fees.refunds.create_async(fee_id, params={"amount": 201})
