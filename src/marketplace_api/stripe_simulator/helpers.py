"""Test helpers: what happens outside Stripe's API — time passing, a buyer paying on the hosted
Checkout page, a cardholder's dispute, a bank refusing a refund or a payout — and the routes that
reach them over HTTP under `/_simulator/` (no API key)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from marketplace_api.stripe_simulator import accounts, checkout, disputes, payments, payouts
from marketplace_api.stripe_simulator.engine import SimEngine
from marketplace_api.stripe_simulator.errors import StripeAPIError, invalid, no_such
from marketplace_api.stripe_simulator.refunds import fail_refund
from marketplace_api.stripe_simulator.state import Obj

REFUND_FAILURE = "expired_or_canceled_card"
PAYOUT_FAILURE = "account_closed"


def tick(sim: SimEngine) -> None:
    """What Stripe does as time passes: expire open Checkout Sessions past `expires_at`, pay
    out connected accounts' available balances on their schedule, and mark payouts paid on
    their arrival date."""
    now = sim.now()
    checkout.expire_due_sessions(sim, now)
    payouts.pay_out_due(sim, now)


def advance_time(sim: SimEngine, seconds: int) -> list[Obj]:
    """Move Stripe's clock and apply what became due; answers the events that caused."""
    before = len(sim.state.events)
    sim.clock.advance(seconds)
    tick(sim)
    return list(sim.state.events.values())[before:]


def pay_checkout_session(sim: SimEngine, session_id: str, method: str) -> Obj:
    """Pay on the hosted page, after what the clock made due (a session may have expired)."""
    tick(sim)
    return checkout.pay_session(sim, session_id, method)


# --- over HTTP ----------------------------------------------------------------------------------

_HELPERS = re.compile(r"^/_simulator/(?P<kind>[a-z_/]+?)/(?P<id>[^/]+)/(?P<action>[a-z_]+)$")
_COUNTED = ("accounts", "payment_intents", "charges", "checkout_sessions", "transfers", "refunds",
            "disputes", "payouts", "events")  # fmt: skip


def run_helper(sim: SimEngine, method: str, path: str, p: Obj) -> Any:
    """Answer `/_simulator/advance_time`, `/_simulator/state` or an action on one object
    (`/_simulator/<kind>/<id>/<action>`)."""
    if path == "/_simulator/advance_time" and method == "POST":
        return {"events": [e["id"] for e in advance_time(sim, int(p.get("seconds", 0)))]}
    if path == "/_simulator/state" and method == "GET":
        return {name: len(getattr(sim.state, name)) for name in _COUNTED}
    match = _HELPERS.match(path)
    if match is None or method != "POST":
        raise StripeAPIError(404, f"Unrecognized simulator helper ({method}: {path}).")
    kind, object_id, action = match["kind"], match["id"], match["action"]
    if sim.state.find(object_id) is None:
        raise no_such(kind.rstrip("s").replace("_", " "), object_id)
    method_ = p.get("payment_method", "pm_card_visa")
    actions: dict[tuple[str, str], Callable[[], Obj]] = {
        ("accounts", "complete_onboarding"): lambda: accounts.complete_onboarding(sim, object_id),
        ("accounts", "deauthorize"): lambda: accounts.deauthorize(sim, object_id),
        ("payment_intents", "confirm"): lambda: payments.confirm_quietly(sim, object_id, method_),
        ("checkout/sessions", "pay"): lambda: pay_checkout_session(sim, object_id, method_),
        ("charges", "dispute"): lambda: disputes.open_dispute(
            sim,
            object_id,
            p.get("reason", "fraudulent"),
            int(p["amount"]) if "amount" in p else None,
        ),
        ("disputes", "close"): lambda: disputes.close_dispute(
            sim, object_id, p.get("outcome") == "won"
        ),
        ("refunds", "fail"): lambda: fail_refund(sim, object_id, REFUND_FAILURE),
        ("payouts", "fail"): lambda: payouts.fail_payout(sim, object_id, PAYOUT_FAILURE),
    }
    action_fn = actions.get((kind, action))
    if action_fn is None:
        raise invalid(f"Unknown simulator helper: {kind}/{action}.")
    return action_fn()
