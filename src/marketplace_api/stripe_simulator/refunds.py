"""Refunds (`reverse_transfer`, `refund_application_fee`), refunds that fail later, and
application fees with their refunds."""

from __future__ import annotations

from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.engine import NO_REQUEST, EventRequest, SimEngine
from marketplace_api.stripe_simulator.errors import StripeAPIError, invalid
from marketplace_api.stripe_simulator.money import amount_up_to
from marketplace_api.stripe_simulator.state import Obj
from marketplace_api.stripe_simulator.transfers import proportional, reverse


def create_refund(sim: SimEngine, ctx: RequestContext, p: Obj) -> Obj:
    if "payment_intent" in p and "charge" in p:
        raise invalid("You can only pass one of `charge` or `payment_intent`.")
    if "payment_intent" in p:
        intent = sim.get("payment_intent", p["payment_intent"], ctx.account, "payment_intent")
        if intent["status"] != "succeeded" or not intent.get("latest_charge"):
            raise invalid(
                f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        charge = sim.state.charges[intent["latest_charge"]]
    elif "charge" in p:
        charge = sim.get("charge", p["charge"], ctx.account, "charge")
    else:
        raise StripeAPIError(
            400,
            "One of the following params should be provided for this request: payment_intent "
            "or charge.",
            code="parameter_missing",
            saved=False,
        )
    if charge["status"] != "succeeded":
        raise invalid("This charge did not succeed; there is nothing to refund.")
    if (
        charge["disputed"]
        and charge["dispute"]
        and sim.state.disputes[charge["dispute"]]["status"] not in ("won", "lost")
    ):
        raise invalid(
            f"Charge {charge['id']} has been disputed: respond to the dispute instead.",
            code="charge_disputed",
        )
    refundable = charge["amount"] - charge["amount_refunded"]
    if refundable <= 0:
        raise invalid(
            f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
        )
    amount = amount_up_to(
        p.get("amount"),
        refundable,
        "Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining}).",
        code="amount_too_large",
    )
    owner = ctx.account
    if p.get("reverse_transfer") and charge.get("transfer") is None:
        raise invalid(
            "reverse_transfer can only be used with a destination charge.",
            param="reverse_transfer",
        )
    if p.get("refund_application_fee") and charge.get("application_fee") is None:
        raise invalid(
            "refund_application_fee can only be used on a charge with an application fee.",
            param="refund_application_fee",
        )
    # Everything is checked before anything changes: a refused refund leaves no trace.
    transfer = sim.state.transfers[charge["transfer"]] if p.get("reverse_transfer") else None
    reversal_amount = 0
    if transfer is not None:
        reversal_amount = proportional(amount, transfer["amount"], charge["amount"])
        if reversal_amount > transfer["amount"] - transfer["amount_reversed"]:
            raise invalid(
                f"The transfer {transfer['id']} has not enough left to reverse "
                f"{reversal_amount}; refund without reverse_transfer.",
                param="reverse_transfer",
            )
    refund = sim.money_object(
        "re",
        "refund",
        amount,
        charge["currency"],
        charge=charge["id"],
        destination_details={"card": {"type": "refund"}, "type": "card"},
        failure_reason=None,
        metadata=p.get("metadata") or {},
        payment_intent=charge["payment_intent"],
        reason=p.get("reason"),
        receipt_number=None,
        source_transfer_reversal=None,
        status="succeeded",
        transfer_reversal=None,
    )
    sim.store(refund, owner)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    # Stripe shows a charge's refunds only when asked to (`expand[]=refunds`, see the engine).
    sim.private(charge["id"]).setdefault("refunds", []).insert(0, refund["id"])
    # Refunding a charge whose funds are still pending takes them from pending.
    sim.credit(owner, -amount, charge["currency"], source=refund["id"], like=charge["id"])
    if transfer is not None and reversal_amount > 0:
        reversal = reverse(
            sim,
            transfer,
            reversal_amount,
            {},
            source_refund=refund["id"],
            request=ctx.request,
        )
        refund["transfer_reversal"] = reversal["id"]
    sim.emit("refund.created", refund, account=owner, request=ctx.request)
    sim.emit("charge.refunded", charge, account=owner, request=ctx.request)
    if p.get("refund_application_fee"):
        fee = sim.state.application_fees[charge["application_fee"]]
        fee_amount = min(
            proportional(amount, fee["amount"], charge["amount"]),
            fee["amount"] - fee["amount_refunded"],
        )
        if fee_amount > 0:
            refund_fee(sim, fee, fee_amount, request=ctx.request)
    return refund


def refund_fee(
    sim: SimEngine,
    fee: Obj,
    amount: int,
    request: EventRequest = NO_REQUEST,
) -> Obj:
    fee_refund = sim.money_object(
        "fr", "fee_refund", amount, fee["currency"], fee=fee["id"], metadata={}
    )
    sim.store(fee_refund)
    fee["amount_refunded"] += amount
    fee["refunded"] = fee["amount_refunded"] == fee["amount"]
    fee["refunds"]["data"].insert(0, fee_refund)
    sim.credit(None, -amount, fee["currency"], source=fee_refund["id"], like=fee["id"])
    sim.credit(fee["account"], amount, fee["currency"], source=fee_refund["id"], like=fee["id"])
    sim.emit("application_fee.refunded", fee, request=request)
    return fee_refund


def fail_refund(sim: SimEngine, refund_id: str, reason: str) -> Obj:
    """A refund that succeeded fails later (the card was closed): the money comes back to the
    balance it left; a reversal it caused stays (Stripe does not undo it)."""
    refund = sim.state.refunds[refund_id]
    if refund["status"] == "failed":
        return refund
    owner = sim.state.owner[refund_id]
    refund.update(status="failed", failure_reason=reason)
    charge = sim.state.charges[refund["charge"]]
    charge["amount_refunded"] -= refund["amount"]
    charge["refunded"] = False
    sim.credit(owner, refund["amount"], refund["currency"], source=refund_id)
    sim.emit("refund.failed", refund, account=owner)
    sim.emit("refund.updated", refund, account=owner, previous_attributes={"status": "succeeded"})
    sim.emit("charge.refund.updated", refund, account=owner)
    return refund


def retrieve_refund(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("refund", id, ctx.account)


def list_refunds(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    return sim.listed("refund", ctx.account, p, "payment_intent", "charge")


def retrieve_fee(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("application_fee", id, ctx.account)


def create_fee_refund(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    """A fee refunded by itself (the platform gives its fee back, e.g. from the dashboard)."""
    fee = sim.get("application_fee", id, ctx.account)
    amount = amount_up_to(
        p.get("amount"),
        fee["amount"] - fee["amount_refunded"],
        "Refund amount ({amount}) is greater than the fee's unrefunded amount ({remaining}).",
    )
    fee_refund = refund_fee(sim, fee, amount, request=ctx.request)
    fee_refund["metadata"] = p.get("metadata") or {}
    return fee_refund


def list_fee_refunds(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> list[Obj]:
    return list(sim.get("application_fee", id, ctx.account)["refunds"]["data"])


def list_fees(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    # Application fees live on the platform: a request with `Stripe-Account` lists none.
    return sim.listed("application_fee", ctx.account, p, "charge")
