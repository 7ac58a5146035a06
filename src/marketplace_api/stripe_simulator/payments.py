"""PaymentIntents: destination (`transfer_data`), direct (with `Stripe-Account`) and separate
(`transfer_group`) charges as Stripe checks their parameters, confirmation with Stripe's test
payment methods (a decline answers Stripe's 402 `card_error`), and cancellation."""

from __future__ import annotations

import copy

from marketplace_api.stripe_simulator.accounts import active_account
from marketplace_api.stripe_simulator.charges import (
    DECLINE_MESSAGES,
    TEST_PAYMENT_METHODS,
    new_charge,
    settle_charge,
)
from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.disputes import open_dispute
from marketplace_api.stripe_simulator.engine import NO_REQUEST, EventRequest, SimEngine
from marketplace_api.stripe_simulator.errors import (
    StripeAPIError,
    invalid,
    missing_parameter,
    no_such,
    unexpected_state,
)
from marketplace_api.stripe_simulator.money import check_charge_amount, check_currency
from marketplace_api.stripe_simulator.state import Obj

CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
              "requires_action", "processing")  # fmt: skip


def check_connect_params(
    sim: SimEngine, ctx: RequestContext, p: Obj, amount: int, prefix: str = ""
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
        active_account(
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
        active_account(sim, on_behalf_of, "card_payments", f"{prefix}on_behalf_of")
        if transfer is not None and transfer["destination"] != on_behalf_of:
            raise invalid(
                "transfer_data[destination] must be the same account as on_behalf_of.",
                param=f"{prefix}on_behalf_of",
            )


def new_payment_intent(
    sim: SimEngine, p: Obj, *, amount: int, currency: str, owner: str | None
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


def create_intent(sim: SimEngine, ctx: RequestContext, p: Obj) -> Obj:
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


def retrieve_intent(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    intent = sim.get("payment_intent", id, ctx.account)
    _check_client_secret(ctx, intent, p)
    return intent


def list_intents(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    return sim.listed("payment_intent", ctx.account, p)


def confirm_intent(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
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
    sim: SimEngine,
    intent: Obj,
    method: str,
    owner: str | None,
    request: EventRequest = NO_REQUEST,
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
    charge = new_charge(sim, intent, pm_id, brand, last4, owner)
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
    settle_charge(sim, intent, charge, owner)
    sim.emit("charge.succeeded", charge, account=owner, request=request)
    sim.emit("payment_intent.succeeded", intent, account=owner, request=request)
    if disputes:
        open_dispute(sim, charge["id"], "fraudulent", None)
    return intent


def charged(sim: SimEngine, intent: Obj, method: str, owner: str | None) -> bool:
    """Confirm outside an API call (a helper, the hosted page): a declined card is an answer
    here, not an error — False, with the intent back in `requires_payment_method`."""
    try:
        confirm(sim, intent, method, owner)
    except StripeAPIError as exc:
        if exc.type != "card_error":
            raise
        return False
    return True


def confirm_quietly(sim: SimEngine, intent_id: str, method: str) -> Obj:
    intent = sim.state.payment_intents[intent_id]
    charged(sim, intent, method, sim.state.owner[intent_id])
    return intent


def cancel_intent(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
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
    sim: SimEngine,
    intent: Obj,
    reason: str | None,
    owner: str | None,
    request: EventRequest = NO_REQUEST,
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
