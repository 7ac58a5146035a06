"""A stateful, in-memory Stripe Connect simulator for development, demos and tests.

It answers the part of Stripe's API this service uses with Stripe-shaped JSON the stripe SDK
parses unchanged, validates parameters and idempotency keys as Stripe does, and emits the events
Stripe would, signed with each endpoint's secret. One entry, `sim.handle(httpx.Request) ->
httpx.Response`, serves tests (a respx side effect), the dev server (an in-process httpx
transport) and the mounted `/simulator/api/...` routes.

In a test::

    import respx
    from marketplace_api.stripe_simulator import StripeSimulator

    sim = StripeSimulator(seed=1)                      # deliveries wait in sim.pending
    with respx.mock(assert_all_called=False) as router:
        router.route(host="api.stripe.com").mock(side_effect=sim.handle)
        ...                                            # drive the app; it calls "Stripe"
    # a webhook endpoint, so events are signed and queued (or call the service's
    # `sync_webhook_endpoints(gateway, url)` through the simulator):
    secret = sim.add_webhook_endpoint("https://api.test/webhooks/stripe", connect=False)

    sim.state.payment_intents[intent_id]["status"]     # read Stripe's side (plain JSON dicts)
    sim.complete_onboarding(account_id)                # account.updated + capability.updated
    sim.confirm_payment_intent(intent_id, "pm_card_visa")   # or pm_card_chargeDeclined,
                                                       # pm_card_createDispute
    sim.pay_checkout_session(session_id, "pm_card_visa")
    sim.open_dispute(charge_id); sim.close_dispute(dispute_id, won=False)
    sim.fail_refund(refund_id); sim.advance_time(3 * 86400)  # availability, payouts, expiry
    for delivery in sim.take_deliveries():             # signed, in emission order
        await delivery.post(app_client)                # POST /webhooks/stripe (drop, duplicate,
                                                       # reorder or delay them as you like)
    await sim.deliver_pending(app_client)              # or all of them, in order

Objects live in `sim.state.<kind>` (`accounts`, `payment_intents`, `charges`,
`checkout_sessions`, `transfers`, `transfer_reversals`, `refunds`, `application_fees`,
`disputes`, `payouts`, `events`, `webhook_endpoints`); `sim.state.owner[id]` is the connected
account an object lives on (None: the platform). `sim.balances(account_or_None)` gives
`{currency: {"available", "pending"}}`. The same helpers are reachable over HTTP under
`/_simulator/...` (see `helpers.py`), which the dev server mounts at `/simulator/api/_simulator/`.

What it does not model is listed in the README ("Stripe simulator").
"""

from marketplace_api.stripe_simulator.core import StripeSimulator
from marketplace_api.stripe_simulator.events import Delivery, sign
from marketplace_api.stripe_simulator.state import SimState

__all__ = ["Delivery", "SimState", "StripeSimulator", "sign"]
