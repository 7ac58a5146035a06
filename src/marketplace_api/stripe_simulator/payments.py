"""PaymentIntents (destination, direct with `Stripe-Account`, separate with `transfer_group`),
their charges, confirmation with Stripe's test payment methods, and Checkout Sessions."""

from __future__ import annotations

import copy
from typing import Any

from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.core import AVAILABILITY_DELAY, DAY, StripeSimulator
from marketplace_api.stripe_simulator.errors import (
    StripeAPIError,
    invalid,
    missing_parameter,
    no_such,
    unexpected_state,
)
from marketplace_api.stripe_simulator.money import check_charge_amount, check_currency
from marketplace_api.stripe_simulator.state import Obj

# Stripe's test payment methods: (brand, last4, decline code or None, opens a dispute).
TEST_PAYMENT_METHODS: dict[str, tuple[str, str, str | None, bool]] = {
    "pm_card_visa": ("visa", "4242", None, False),
    "tok_visa": ("visa", "4242", None, False),
    "pm_card_mastercard": ("mastercard", "4444", None, False),
    "pm_card_amex": ("amex", "8431", None, False),
    "pm_card_chargeDeclined": ("visa", "0002", "generic_decline", False),
    "pm_card_visa_chargeDeclined": ("visa", "0002", "generic_decline", False),
    "tok_chargeDeclined": ("visa", "0002", "generic_decline", False),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "insufficient_funds", False),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("visa", "9995", "insufficient_funds", False),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069", "expired_card", False),
    "pm_card_createDispute": ("visa", "0259", None, True),
    "tok_createDispute": ("visa", "0259", None, True),
}
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
              "requires_action", "processing")  # fmt: skip
DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
}


def _active_account(sim: StripeSimulator, account_id: str, capability: str, param: str) -> Obj:
    account = sim.state.accounts.get(account_id)
    if account is None or sim.private(account_id).get("deauthorized"):
        raise no_such("destination", account_id, param)
    if account["capabilities"].get(capability) != "active":
        raise invalid(
            f"Your destination account needs to have at least one of the following capabilities "
            f"enabled: {capability}.",
            param=param,
            code="insufficient_capabilities_for_transfer"
            if capability == "transfers"
            else "account_invalid",
        )
    return account


def check_connect_params(
    sim: StripeSimulator, ctx: RequestContext, p: Obj, amount: int, prefix: str = ""
) -> None:
    """`application_fee_amount`, `transfer_data` and `on_behalf_of` as Stripe checks them."""
    fee = p.get("application_fee_amount")
    transfer = p.get("transfer_data")
    if ctx.account is not None:
        account = sim.state.accounts.get(ctx.account)
        if account is None or account["capabilities"].get("card_payments") != "active":
            raise invalid(
                "No valid payment method types for this Payment Intent: the connected account "
                "cannot accept card payments (card_payments capability inactive).",
                code="payment_intent_invalid_parameter",
            )
        if transfer is not None:
            raise invalid(
                "transfer_data cannot be used on a direct charge (with Stripe-Account).",
                param=f"{prefix}transfer_data",
            )
    if fee is not None:
        if ctx.account is None and transfer is None:
            raise invalid(
                "Can only apply an application_fee_amount when the PaymentIntent is attempting a "
                "direct payment (using an OAuth key or Stripe-Account header) or destination "
                "payment (using `transfer_data[destination]`).",
                param=f"{prefix}application_fee_amount",
            )
        if not 0 <= fee <= amount:
            raise invalid(
                "The application_fee_amount must be between 0 and the amount.",
                param=f"{prefix}application_fee_amount",
            )
    if transfer is not None:
        _active_account(
            sim, transfer["destination"], "transfers", f"{prefix}transfer_data[destination]"
        )
        if "amount" in transfer:
            if fee is not None:
                raise invalid(
                    "You may not provide both application_fee_amount and transfer_data[amount].",
                    param=f"{prefix}transfer_data[amount]",
                )
            if transfer["amount"] > amount:
                raise invalid(
                    "transfer_data[amount] cannot exceed the amount.",
                    param=f"{prefix}transfer_data[amount]",
                )
    on_behalf_of = p.get("on_behalf_of")
    if on_behalf_of is not None:
        _active_account(sim, on_behalf_of, "card_payments", f"{prefix}on_behalf_of")
        if transfer is not None and transfer["destination"] != on_behalf_of:
            raise invalid(
                "transfer_data[destination] must be the same account as on_behalf_of.",
                param=f"{prefix}on_behalf_of",
            )


def new_payment_intent(
    sim: StripeSimulator, p: Obj, *, amount: int, currency: str, owner: str | None
) -> Obj:
    pi_id = sim.new_id("pi")
    intent: Obj = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": 0,
        "application": None,
        "application_fee_amount": p.get("application_fee_amount"),
        "automatic_payment_methods": {"allow_redirects": "always", "enabled": True}
        if "payment_method_types" not in p
        else None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{pi_id}_secret_{sim.new_id('s')[2:]}",
        "confirmation_method": "automatic",
        "created": sim.now(),
        "currency": currency,
        "customer": None,
        "description": p.get("description"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": p.get("metadata") or {},
        "next_action": None,
        "on_behalf_of": p.get("on_behalf_of"),
        "payment_method": None,
        "payment_method_types": p.get("payment_method_types") or ["card"],
        "receipt_email": p.get("receipt_email"),
        "statement_descriptor": p.get("statement_descriptor"),
        "statement_descriptor_suffix": p.get("statement_descriptor_suffix"),
        "status": "requires_payment_method",
        "transfer_data": p.get("transfer_data"),
        "transfer_group": p.get("transfer_group"),
    }
    sim.store(intent, owner)
    sim.emit("payment_intent.created", intent, account=owner)
    return intent


def create_payment_intent(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> Obj:
    currency = check_currency(p["currency"])
    check_charge_amount(p["amount"], currency)
    check_connect_params(sim, ctx, p, p["amount"])
    if p.get("confirm") and not p.get("payment_method"):
        raise missing_parameter("payment_method")
    intent = new_payment_intent(sim, p, amount=p["amount"], currency=currency, owner=ctx.account)
    if p.get("confirm"):
        confirm(sim, intent, p["payment_method"], ctx.account, ctx.request)
    return intent


def _check_client_secret(ctx: RequestContext, intent: Obj, p: Obj) -> None:
    if ctx.publishable and p.get("client_secret") != intent["client_secret"]:
        raise invalid(
            "The client_secret provided does not match the client_secret associated with the "
            "PaymentIntent.",
            param="client_secret",
        )


def retrieve_payment_intent(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    intent = sim.get("payment_intent", id, ctx.account)
    _check_client_secret(ctx, intent, p)
    return intent


def list_payment_intents(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> list[Obj]:
    return [
        i for i in sim.state.payment_intents.values() if sim.state.owner[i["id"]] == ctx.account
    ]


def confirm_payment_intent(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    intent = sim.get("payment_intent", id, ctx.account)
    _check_client_secret(ctx, intent, p)
    if sim.private(id).get("checkout_session") and not ctx.publishable:
        raise invalid("This PaymentIntent is managed by a Checkout Session.")
    method = p.get("payment_method") or intent.get("payment_method")
    if not method:
        raise unexpected_state(
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            "payment_intent_unexpected_state",
        )
    return confirm(sim, intent, method, ctx.account, ctx.request)


def confirm(
    sim: StripeSimulator,
    intent: Obj,
    method: str,
    owner: str | None,
    request: tuple[str | None, str | None] = (None, None),
) -> Obj:
    """Charge the test payment method. Success: a captured charge, the destination transfer and
    application fee where the intent asks for them. A decline: a failed charge, the intent back
    in `requires_payment_method`, and Stripe's 402 `card_error`."""
    if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
        raise unexpected_state(
            f"This PaymentIntent's status is {intent['status']}; it cannot be confirmed.",
            "payment_intent_unexpected_state",
        )
    known = TEST_PAYMENT_METHODS.get(method)
    if known is None:
        raise no_such("PaymentMethod", method, "payment_method")
    brand, last4, decline, disputes = known
    pm_id = sim.new_id("pm")
    charge = _new_charge(sim, intent, pm_id, brand, last4, owner)
    intent["payment_method"] = pm_id
    intent["latest_charge"] = charge["id"]
    if decline is not None:
        code = "expired_card" if decline == "expired_card" else "card_declined"
        message = DECLINE_MESSAGES[decline]
        charge.update(
            status="failed",
            paid=False,
            captured=False,
            amount_captured=0,
            failure_code=code,
            failure_message=message,
            outcome={"network_status": "declined_by_network", "reason": decline,
                     "risk_level": "normal", "seller_message": "The bank declined the payment.",
                     "type": "issuer_declined"},
        )  # fmt: skip
        error: Obj = {
            "type": "card_error",
            "code": code,
            "decline_code": decline,
            "message": message,
            "charge": charge["id"],
            "payment_method": {"id": pm_id, "object": "payment_method", "type": "card"},
        }
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = error
        sim.emit("charge.failed", charge, account=owner, request=request)
        sim.emit("payment_intent.payment_failed", intent, account=owner, request=request)
        raise StripeAPIError(
            402,
            message,
            type_="card_error",
            code=code,
            extra={
                "decline_code": decline,
                "charge": charge["id"],
                "payment_intent": copy.deepcopy(intent),
            },
        )
    intent.update(status="succeeded", amount_received=intent["amount"], last_payment_error=None)
    _settle_charge(sim, intent, charge, owner)
    sim.emit("charge.succeeded", charge, account=owner, request=request)
    sim.emit("payment_intent.succeeded", intent, account=owner, request=request)
    if disputes:
        from marketplace_api.stripe_simulator.movements import open_dispute

        open_dispute(sim, charge["id"], "fraudulent", None)
    return intent


def _new_charge(
    sim: StripeSimulator, intent: Obj, pm_id: str, brand: str, last4: str, owner: str | None
) -> Obj:
    charge_id = sim.new_id("ch")
    charge: Obj = {
        "id": charge_id,
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": intent["amount"],
        "amount_refunded": 0,
        "application_fee": None,
        "application_fee_amount": intent["application_fee_amount"],
        "balance_transaction": sim.new_id("txn"),
        "captured": True,
        "created": sim.now(),
        "currency": intent["currency"],
        "description": intent.get("description"),
        "destination": (intent.get("transfer_data") or {}).get("destination"),
        "dispute": None,
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {},
        "on_behalf_of": intent.get("on_behalf_of"),
        "outcome": {"network_status": "approved_by_network", "reason": None,
                    "risk_level": "normal", "seller_message": "Payment complete.",
                    "type": "authorized"},
        "paid": True,
        "payment_intent": intent["id"],
        "payment_method": pm_id,
        "payment_method_details": {"card": {"brand": brand, "last4": last4}, "type": "card"},
        "receipt_email": intent.get("receipt_email"),
        "refunded": False,
        "refunds": sim.list_object(f"/v1/charges/{charge_id}/refunds", []),
        "source_transfer": None,
        "status": "succeeded",
        "transfer": None,
        "transfer_data": intent.get("transfer_data"),
        "transfer_group": intent.get("transfer_group"),
    }  # fmt: skip
    return sim.store(charge, owner)


def _settle_charge(sim: StripeSimulator, intent: Obj, charge: Obj, owner: str | None) -> None:
    """Money of a successful charge: to the platform (destination, separate) or the connected
    account (direct); the destination transfer; the application fee to the platform."""
    amount, currency, fee = charge["amount"], charge["currency"], intent["application_fee_amount"]
    sim.credit(owner, amount, currency, source=charge["id"], delay=AVAILABILITY_DELAY)
    destination = (intent.get("transfer_data") or {}).get("destination")
    fee_account = owner
    if destination is not None:
        from marketplace_api.stripe_simulator.movements import new_transfer

        transfer_amount = intent["transfer_data"].get("amount", amount)
        transfer = new_transfer(
            sim,
            amount=transfer_amount,
            currency=currency,
            destination=destination,
            source_transaction=charge["id"],
            transfer_group=intent.get("transfer_group"),
            metadata={},
        )
        charge["transfer"] = transfer["id"]
        fee_account = destination
    if fee and fee_account is not None:
        fee_id = sim.new_id("fee")
        application_fee: Obj = {
            "id": fee_id,
            "object": "application_fee",
            "account": fee_account,
            "amount": fee,
            "amount_refunded": 0,
            "balance_transaction": sim.new_id("txn"),
            "charge": charge["id"],
            "created": sim.now(),
            "currency": currency,
            "livemode": False,
            "originating_transaction": charge["id"],
            "refunded": False,
            "refunds": sim.list_object(f"/v1/application_fees/{fee_id}/refunds", []),
        }
        sim.store(application_fee)
        charge["application_fee"] = fee_id
        sim.credit(fee_account, -fee, currency, source=fee_id, like=charge["id"])
        sim.credit(None, fee, currency, source=fee_id, like=charge["id"])
        sim.emit("application_fee.created", application_fee)


def confirm_quietly(sim: StripeSimulator, intent_id: str, method: str) -> Obj:
    account = sim.state.owner[intent_id]
    intent = sim.state.payment_intents[intent_id]
    try:
        confirm(sim, intent, method, account)
    except StripeAPIError as exc:
        if exc.type != "card_error":
            raise
    return intent


def cancel_payment_intent(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    intent = sim.get("payment_intent", id, ctx.account)
    session_id = sim.private(id).get("checkout_session")
    if session_id and sim.state.checkout_sessions[session_id]["status"] == "open":
        raise invalid(
            "This PaymentIntent was created by a Checkout Session that is still open; expire "
            "the Checkout Session instead.",
            code="payment_intent_unexpected_state",
        )
    return cancel(sim, intent, p.get("cancellation_reason"), ctx.account, ctx.request)


def cancel(
    sim: StripeSimulator,
    intent: Obj,
    reason: str | None,
    owner: str | None,
    request: tuple[str | None, str | None] = (None, None),
) -> Obj:
    if intent["status"] not in CANCELABLE:
        raise unexpected_state(
            f"You cannot cancel this PaymentIntent because it has a status of "
            f"{intent['status']}. Only a PaymentIntent with one of the following statuses may "
            f"be canceled: {', '.join(CANCELABLE)}.",
            "payment_intent_unexpected_state",
        )
    intent.update(status="canceled", canceled_at=sim.now(), cancellation_reason=reason)
    sim.emit("payment_intent.canceled", intent, account=owner, request=request)
    return intent


def retrieve_charge(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("charge", id, ctx.account)


def list_charges(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> list[Obj]:
    return [
        c
        for c in sim.state.charges.values()
        if sim.state.owner[c["id"]] == ctx.account
        and p.get("payment_intent") in (None, c["payment_intent"])
        and p.get("transfer_group") in (None, c["transfer_group"])
    ]


# --- Checkout Sessions ----------------------------------------------------------------------

SESSION_MIN_TTL, SESSION_MAX_TTL = 30 * 60, DAY


def create_checkout_session(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> Obj:
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


def retrieve_checkout_session(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("checkout.session", id, ctx.account)


def list_checkout_sessions(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> list[Obj]:
    return [
        s
        for s in sim.state.checkout_sessions.values()
        if sim.state.owner[s["id"]] == ctx.account
        and p.get("payment_intent") in (None, s["payment_intent"])
        and p.get("status") in (None, s["status"])
    ]


def list_line_items(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> list[Obj]:
    sim.get("checkout.session", id, ctx.account)
    return [
        {"id": f"li_{id[-12:]}{i}", "object": "item", **line}
        for i, line in enumerate(sim.private(id)["line_items"])
    ]


def expire_checkout_session(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    session = sim.get("checkout.session", id, ctx.account)
    if session["status"] != "open":
        raise invalid(
            f"This Checkout Session is {session['status']}: only an open session can be expired."
        )
    return expire_session(sim, session, ctx.account, ctx.request)


def expire_session(
    sim: StripeSimulator,
    session: Obj,
    owner: str | None,
    request: tuple[str | None, str | None] = (None, None),
) -> Obj:
    session["status"] = "expired"
    intent_id = session.get("payment_intent")
    if intent_id:
        intent = sim.state.payment_intents[intent_id]
        if intent["status"] in CANCELABLE:
            cancel(sim, intent, "abandoned", owner, request)
    sim.emit("checkout.session.expired", session, account=owner, request=request)
    return session


def pay_session(sim: StripeSimulator, session_id: str, method: str) -> Obj:
    """What the hosted page does when the buyer pays: the session's PaymentIntent (created on
    the first attempt) confirmed with `method`; on success the session completes."""
    from marketplace_api.stripe_simulator.movements import tick

    tick(sim)
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
    try:
        confirm(sim, intent, method, account)
    except StripeAPIError as exc:
        if exc.type != "card_error":
            raise
        return session
    session.update(
        status="complete",
        payment_status="paid",
        customer_details={"email": session.get("customer_email"), "name": "Test Buyer"},
    )
    sim.emit("checkout.session.completed", session, account=account)
    return session
