"""Checkout Sessions: created with inline `price_data` line items, expired by the API or by
the clock, and paid on the hosted page (which creates and confirms the session's PaymentIntent)."""

from __future__ import annotations

from typing import Any

from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.engine import DAY, NO_REQUEST, EventRequest, SimEngine
from marketplace_api.stripe_simulator.errors import (
    invalid,
    missing_parameter,
    no_such,
)
from marketplace_api.stripe_simulator.money import check_charge_amount, check_currency
from marketplace_api.stripe_simulator.payments import (
    CANCELABLE,
    cancel,
    charged,
    check_connect_params,
    new_payment_intent,
)
from marketplace_api.stripe_simulator.state import Obj

SESSION_MIN_TTL, SESSION_MAX_TTL = 30 * 60, DAY


def create_session(sim: SimEngine, ctx: RequestContext, p: Obj) -> Obj:
    items = p.get("line_items")
    if not items:
        raise missing_parameter("line_items")
    currencies, total, lines = set(), 0, []
    for i, item in enumerate(items):
        if "price" in item:
            raise no_such("price", item["price"], f"line_items[{i}][price]")
        data = item.get("price_data")
        if data is None:
            raise missing_parameter(f"line_items[{i}][price_data]")
        if "unit_amount" not in data:
            raise missing_parameter(f"line_items[{i}][price_data][unit_amount]")
        if "product_data" not in data:
            raise missing_parameter(f"line_items[{i}][price_data][product_data]")
        currencies.add(check_currency(data["currency"], f"line_items[{i}][price_data][currency]"))
        total += data["unit_amount"] * item["quantity"]
        lines.append(
            {
                "description": data["product_data"]["name"],
                "quantity": item["quantity"],
                "unit_amount": data["unit_amount"],
                "amount_total": data["unit_amount"] * item["quantity"],
                "currency": data["currency"],
            }
        )
    if len(currencies) != 1:
        raise invalid("All line items must have the same currency.", param="line_items")
    (currency,) = currencies
    check_charge_amount(total, currency, "line_items")
    intent_data = p.get("payment_intent_data") or {}
    check_connect_params(sim, ctx, intent_data, total, "payment_intent_data")
    now = sim.clock.wall()
    expires_at = p.get("expires_at", now + DAY)
    if not now + SESSION_MIN_TTL - 60 <= expires_at <= now + SESSION_MAX_TTL + 60:
        raise invalid(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from the "
            "Checkout Session's creation.",
            param="expires_at",
        )
    session_id = sim.new_id("cs_test", 58)
    session: Obj = {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": total,
        "amount_total": total,
        "cancel_url": p.get("cancel_url"),
        "client_reference_id": p.get("client_reference_id"),
        "created": sim.now(),
        "currency": currency,
        "customer": None,
        "customer_details": None,
        "customer_email": p.get("customer_email"),
        "expires_at": expires_at,
        "livemode": False,
        "metadata": p.get("metadata") or {},
        "mode": "payment",
        "payment_intent": None,
        "payment_method_types": p.get("payment_method_types") or ["card"],
        "payment_status": "unpaid",
        "status": "open",
        "success_url": p.get("success_url"),
        "ui_mode": "hosted",
        "url": f"{sim.public_url}/simulator/checkout/{session_id}",
    }
    sim.store(session, ctx.account)
    # Expiry runs on the simulator's clock, which `advance_time` may have moved past wall time.
    sim.private(session_id).update(
        line_items=lines, intent_data=intent_data, expires=expires_at + sim.state.clock_offset
    )
    return session


def retrieve_session(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("checkout.session", id, ctx.account)


def list_sessions(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    return sim.listed("checkout.session", ctx.account, p, "payment_intent", "status")


def list_line_items(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> list[Obj]:
    sim.get("checkout.session", id, ctx.account)
    return [
        {"id": f"li_{id[-12:]}{i}", "object": "item", **line}
        for i, line in enumerate(sim.private(id)["line_items"])
    ]


def expire_session(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    session = sim.get("checkout.session", id, ctx.account)
    if session["status"] != "open":
        raise invalid(
            f"This Checkout Session is {session['status']}: only an open session can be expired."
        )
    return expire(sim, session, ctx.account, ctx.request)


def expire(
    sim: SimEngine,
    session: Obj,
    owner: str | None,
    request: EventRequest = NO_REQUEST,
) -> Obj:
    session["status"] = "expired"
    intent_id = session.get("payment_intent")
    if intent_id:
        intent = sim.state.payment_intents[intent_id]
        if intent["status"] in CANCELABLE:
            cancel(sim, intent, "abandoned", owner, request)
    sim.emit("checkout.session.expired", session, account=owner, request=request)
    return session


def pay_session(sim: SimEngine, session_id: str, method: str) -> Obj:
    """What the hosted page does when the buyer pays: the session's PaymentIntent (created on
    the first attempt) confirmed with `method`; on success the session completes. The caller
    applies what the clock made due first (`helpers.pay_checkout_session`)."""
    session = sim.state.checkout_sessions[session_id]
    account = sim.state.owner[session_id]
    if session["status"] != "open":
        raise invalid(f"This Checkout Session is {session['status']}.")
    intent_id = session.get("payment_intent")
    if intent_id is None:
        data: dict[str, Any] = dict(sim.private(session_id)["intent_data"])
        if session.get("customer_email") and "receipt_email" not in data:
            data["receipt_email"] = session["customer_email"]
        intent = new_payment_intent(
            sim, data, amount=session["amount_total"], currency=session["currency"], owner=account
        )
        sim.private(intent["id"])["checkout_session"] = session_id
        session["payment_intent"] = intent["id"]
    else:
        intent = sim.state.payment_intents[intent_id]
    if not charged(sim, intent, method, account):
        return session
    session.update(
        status="complete",
        payment_status="paid",
        customer_details={"email": session.get("customer_email"), "name": "Test Buyer"},
    )
    sim.emit("checkout.session.completed", session, account=account)
    return session


def expire_due_sessions(sim: SimEngine, now: int) -> None:
    """Expire the open sessions whose `expires_at` the simulator's clock has passed at `now`."""
    for session in list(sim.state.checkout_sessions.values()):
        if session["status"] == "open" and sim.private(session["id"])["expires"] <= now:
            expire(sim, session, sim.state.owner[session["id"]])
