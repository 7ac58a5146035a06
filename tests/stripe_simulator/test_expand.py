"""What an answer includes: a charge's refunds only when the request expands them, as Stripe."""

from __future__ import annotations

import httpx

from marketplace_api.stripe_simulator import StripeSimulator

KEY = {"Authorization": "Bearer sk_test_simulated"}


async def test_a_charge_lists_its_refunds_only_when_expanded(sim: StripeSimulator) -> None:
    async with httpx.AsyncClient(transport=sim.transport(), base_url="https://api.stripe.com") as c:
        made = await c.post(
            "/v1/payment_intents",
            data={"amount": "5000", "currency": "usd", "confirm": "true",
                  "payment_method": "pm_card_visa"},
            headers=KEY,
        )  # fmt: skip
        charge_id = made.json()["latest_charge"]
        refund = await c.post(
            "/v1/refunds", data={"charge": charge_id, "amount": "1500"}, headers=KEY
        )
        plain = await c.get(f"/v1/charges/{charge_id}", headers=KEY)
        expanded = await c.get(f"/v1/charges/{charge_id}?expand[0]=refunds", headers=KEY)

    assert made.status_code == refund.status_code == plain.status_code == 200
    assert "refunds" not in plain.json()
    assert plain.json()["amount_refunded"] == 1500
    listed = expanded.json()["refunds"]
    assert listed["url"] == f"/v1/charges/{charge_id}/refunds"
    assert [(r["id"], r["amount"]) for r in listed["data"]] == [(refund.json()["id"], 1500)]
    # The events carry the charge as Stripe sends it: without its refunds.
    assert all("refunds" not in e["data"]["object"] for e in sim.events_of("charge.refunded"))
