"""The service's real gateway against the simulator: every call it makes is accepted, and the
simulator's state afterwards is what Stripe's would be."""

from __future__ import annotations

import inspect

import respx

from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.stripe_simulator import StripeSimulator
from tests.stripe_simulator.scenario import every_gateway_call


async def test_every_gateway_call_is_accepted_with_stripe_shaped_answers(
    gateway: StripeGateway, sim: StripeSimulator, sim_api: respx.MockRouter
) -> None:
    called = await every_gateway_call(gateway, sim)

    public = {
        name
        for name, member in inspect.getmembers(StripeGateway, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert called == public  # a new gateway method must be added to the scenario
    statuses = [call.response.status_code for call in sim_api.calls]
    assert statuses
    assert set(statuses) == {200}
    for call in sim_api.calls:
        if call.request.method == "POST":
            assert call.request.headers["Idempotency-Key"]


async def test_state_after_the_scenario_matches_stripes_money_rules(
    gateway: StripeGateway, sim: StripeSimulator, sim_api: respx.MockRouter
) -> None:
    await every_gateway_call(gateway, sim)
    state = sim.state

    # destination: 10,000 charged, full transfer, fee 1,000; refund 2,500 reverses 2,500 of the
    # transfer and refunds 250 of the fee (proportionally).
    dest = next(
        pi for pi in state.payment_intents.values() if pi["metadata"] == {"payment_id": "p1"}
    )
    charge = state.charges[dest["latest_charge"]]
    transfer = state.transfers[charge["transfer"]]
    fee = state.application_fees[charge["application_fee"]]
    assert (charge["amount_refunded"], transfer["amount"], transfer["amount_reversed"]) == (
        2_500,
        10_000,
        2_500,
    )
    assert (fee["amount"], fee["amount_refunded"]) == (1_000, 250)
    refund = next(r for r in state.refunds.values() if r["metadata"] == {"refund_id": "r1"})
    assert state.transfer_reversals[refund["transfer_reversal"]]["source_refund"] == refund["id"]

    # direct: the cancelled one, and the paid one living on the connected account
    direct = [pi for pi in state.payment_intents.values() if state.owner[pi["id"]] is not None]
    assert sorted(pi["status"] for pi in direct) == ["canceled", "succeeded"]

    # separate: the checkout's charge funds one transfer of 4,000, reversed by 1,000
    sessions = {s["metadata"]["payment_id"]: s for s in state.checkout_sessions.values()}
    assert (sessions["p4"]["status"], sessions["p4"]["payment_status"]) == ("complete", "paid")
    assert sessions["p4"]["amount_total"] == 5_000
    assert sessions["p5"]["status"] == "expired"
    separate = next(t for t in state.transfers.values() if t["metadata"] == {"transfer_id": "t1"})
    assert (separate["amount"], separate["amount_reversed"]) == (4_000, 1_000)
    assert (
        separate["source_transaction"]
        == state.payment_intents[sessions["p4"]["payment_intent"]]["latest_charge"]
    )

    account = next(iter(state.accounts.values()))
    assert account["settings"]["payouts"]["schedule"] == {
        "interval": "monthly",
        "delay_days": 5,
        "monthly_anchor": 15,
    }
    # The vendor's balance: destination 10,000 - fee 1,000 - reversal 2,500 + fee refund 250;
    # direct 5,000 - 500 fee - 5,000 refund + 500 fee refund; separate 4,000 - 1,000. All pending.
    assert sim.balances(account["id"]) == {"usd": {"available": 0, "pending": 9_750}}
