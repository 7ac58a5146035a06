"""Money after the charge: transfers (with `source_transaction`), transfer reversals, refunds
(`reverse_transfer`, `refund_application_fee`), application fee refunds, disputes and payouts,
and what the passing of time does (`tick`)."""

from __future__ import annotations

import copy

from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.core import DAY, StripeSimulator
from marketplace_api.stripe_simulator.errors import StripeAPIError, invalid, missing_parameter
from marketplace_api.stripe_simulator.money import check_currency, check_positive
from marketplace_api.stripe_simulator.state import Obj

DISPUTE_RESPONSE_DAYS = 7
PAYOUT_TRANSIT = DAY


def _proportional(part: int, of: int, total: int) -> int:
    """`of * part / total`, rounded half up (Stripe's proportional reversals and fee refunds)."""
    return (of * part * 2 + total) // (total * 2)


# --- transfers and reversals -----------------------------------------------------------------


def new_transfer(
    sim: StripeSimulator,
    *,
    amount: int,
    currency: str,
    destination: str,
    source_transaction: str | None,
    transfer_group: str | None,
    metadata: Obj,
    request: tuple[str | None, str | None] = (None, None),
) -> Obj:
    transfer_id = sim.new_id("tr")
    transfer: Obj = {
        "id": transfer_id,
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "balance_transaction": sim.new_id("txn"),
        "created": sim.now(),
        "currency": currency,
        "description": None,
        "destination": destination,
        "destination_payment": sim.new_id("py"),
        "livemode": False,
        "metadata": metadata,
        "reversals": sim.list_object(f"/v1/transfers/{transfer_id}/reversals", []),
        "reversed": False,
        "source_transaction": source_transaction,
        "source_type": "card",
        "transfer_group": transfer_group,
    }
    sim.store(transfer)
    # Funds transferred from a charge follow the charge's availability.
    sim.credit(None, -amount, currency, source=transfer_id, like=source_transaction)
    sim.credit(destination, amount, currency, source=transfer_id, like=source_transaction)
    sim.emit("transfer.created", transfer, request=request)
    return transfer


def create_transfer(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> Obj:
    if ctx.account is not None:
        raise invalid("Transfers are made by the platform, without Stripe-Account.")
    if "amount" not in p:
        raise missing_parameter("amount")
    check_positive(p["amount"])
    currency = check_currency(p["currency"])
    from marketplace_api.stripe_simulator.payments import _active_account

    _active_account(sim, p["destination"], "transfers", "destination")
    source = p.get("source_transaction")
    if source is not None:
        charge = sim.get("charge", source, None, "source_transaction")
        if charge["status"] != "succeeded":
            raise invalid("The source_transaction has not succeeded.", param="source_transaction")
        if charge["currency"] != currency:
            raise invalid(
                f"The currency of source_transaction's balance transaction ({charge['currency']})"
                f" must be the same as the transfer currency ({currency}).",
                param="currency",
            )
        transferred = sum(
            t["amount"] - t["amount_reversed"]
            for t in sim.state.transfers.values()
            if t["source_transaction"] == source
        )
        remaining = charge["amount"] - charge["amount_refunded"] - transferred
        if p["amount"] > remaining:
            raise invalid(
                f"Insufficient funds in the source transaction: {remaining} {currency} can "
                f"still be transferred from {source}.",
                param="amount",
                code="insufficient_funds",
            )
    else:
        available = sim.balances(None).get(currency, {}).get("available", 0)
        if p["amount"] > available:
            raise invalid(
                "You have insufficient available funds in your Stripe account. Pass "
                "source_transaction to transfer funds that are still pending.",
                code="balance_insufficient",
            )
    return new_transfer(
        sim,
        amount=p["amount"],
        currency=currency,
        destination=p["destination"],
        source_transaction=source,
        transfer_group=p.get("transfer_group"),
        metadata=p.get("metadata") or {},
        request=ctx.request,
    )


def retrieve_transfer(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("transfer", id, ctx.account)


def list_transfers(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> list[Obj]:
    return [
        t
        for t in sim.state.transfers.values()
        if ctx.account is None
        and p.get("destination") in (None, t["destination"])
        and p.get("transfer_group") in (None, t["transfer_group"])
    ]


def reverse(
    sim: StripeSimulator,
    transfer: Obj,
    amount: int,
    metadata: Obj,
    *,
    source_refund: str | None = None,
    request: tuple[str | None, str | None] = (None, None),
) -> Obj:
    remaining = transfer["amount"] - transfer["amount_reversed"]
    if amount > remaining:
        raise invalid(
            f"Transfer reversal amount ({amount}) is greater than the amount that can still be "
            f"reversed ({remaining}).",
            param="amount",
        )
    reversal: Obj = {
        "id": sim.new_id("trr"),
        "object": "transfer_reversal",
        "amount": amount,
        "balance_transaction": sim.new_id("txn"),
        "created": sim.now(),
        "currency": transfer["currency"],
        "destination_payment_refund": sim.new_id("pyr"),
        "metadata": metadata,
        "source_refund": source_refund,
        "transfer": transfer["id"],
    }
    sim.store(reversal)
    transfer["amount_reversed"] += amount
    transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
    transfer["reversals"]["data"].insert(0, reversal)
    currency, like = transfer["currency"], transfer["id"]
    sim.credit(transfer["destination"], -amount, currency, source=reversal["id"], like=like)
    sim.credit(None, amount, currency, source=reversal["id"], like=like)
    sim.emit("transfer.reversed", transfer, request=request)
    return reversal


def create_reversal(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    transfer = sim.get("transfer", id, ctx.account)
    amount = p.get("amount", transfer["amount"] - transfer["amount_reversed"])
    check_positive(amount)
    return reverse(sim, transfer, amount, p.get("metadata") or {}, request=ctx.request)


def list_reversals(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> list[Obj]:
    return list(sim.get("transfer", id, ctx.account)["reversals"]["data"])


def retrieve_reversal(
    sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str, reversal: str
) -> Obj:
    transfer = sim.get("transfer", id, ctx.account)
    for item in transfer["reversals"]["data"]:
        if item["id"] == reversal:
            return dict(item)
    from marketplace_api.stripe_simulator.errors import no_such

    raise no_such("transfer reversal", reversal)


# --- refunds and application fee refunds ------------------------------------------------------


def create_refund(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> Obj:
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
    amount = p.get("amount", refundable)
    check_positive(amount)
    if amount > refundable:
        raise invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable}).",
            param="amount",
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
        reversal_amount = _proportional(amount, transfer["amount"], charge["amount"])
        if reversal_amount > transfer["amount"] - transfer["amount_reversed"]:
            raise invalid(
                f"The transfer {transfer['id']} has not enough left to reverse "
                f"{reversal_amount}; refund without reverse_transfer.",
                param="reverse_transfer",
            )
    refund: Obj = {
        "id": sim.new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": sim.new_id("txn"),
        "charge": charge["id"],
        "created": sim.now(),
        "currency": charge["currency"],
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "failure_reason": None,
        "metadata": p.get("metadata") or {},
        "payment_intent": charge["payment_intent"],
        "reason": p.get("reason"),
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
    sim.store(refund, owner)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    charge["refunds"]["data"].insert(0, refund)
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
            _proportional(amount, fee["amount"], charge["amount"]),
            fee["amount"] - fee["amount_refunded"],
        )
        if fee_amount > 0:
            refund_fee(sim, fee, fee_amount, request=ctx.request)
    return refund


def refund_fee(
    sim: StripeSimulator,
    fee: Obj,
    amount: int,
    request: tuple[str | None, str | None] = (None, None),
) -> Obj:
    fee_refund: Obj = {
        "id": sim.new_id("fr"),
        "object": "fee_refund",
        "amount": amount,
        "balance_transaction": sim.new_id("txn"),
        "created": sim.now(),
        "currency": fee["currency"],
        "fee": fee["id"],
        "metadata": {},
    }
    sim.store(fee_refund)
    fee["amount_refunded"] += amount
    fee["refunded"] = fee["amount_refunded"] == fee["amount"]
    fee["refunds"]["data"].insert(0, fee_refund)
    sim.credit(None, -amount, fee["currency"], source=fee_refund["id"], like=fee["id"])
    sim.credit(fee["account"], amount, fee["currency"], source=fee_refund["id"], like=fee["id"])
    sim.emit("application_fee.refunded", fee, request=request)
    return fee_refund


def fail_refund(sim: StripeSimulator, refund_id: str, reason: str) -> Obj:
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


def retrieve_refund(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("refund", id, ctx.account)


def list_refunds(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> list[Obj]:
    return [
        r
        for r in sim.state.refunds.values()
        if sim.state.owner[r["id"]] == ctx.account
        and p.get("payment_intent") in (None, r["payment_intent"])
        and p.get("charge") in (None, r["charge"])
    ]


def retrieve_fee(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("application_fee", id, ctx.account)


def create_fee_refund(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    """A fee refunded by itself (the platform gives its fee back, e.g. from the dashboard)."""
    fee = sim.get("application_fee", id, ctx.account)
    remaining = fee["amount"] - fee["amount_refunded"]
    amount = p.get("amount", remaining)
    check_positive(amount)
    if amount > remaining:
        raise invalid(
            f"Refund amount ({amount}) is greater than the fee's unrefunded amount ({remaining}).",
            param="amount",
        )
    fee_refund = refund_fee(sim, fee, amount, request=ctx.request)
    fee_refund["metadata"] = p.get("metadata") or {}
    return fee_refund


def list_fee_refunds(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> list[Obj]:
    return list(sim.get("application_fee", id, ctx.account)["refunds"]["data"])


def list_fees(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> list[Obj]:
    return [
        f
        for f in sim.state.application_fees.values()
        if ctx.account is None and p.get("charge") in (None, f["charge"])
    ]


# --- disputes -----------------------------------------------------------------------------------


def open_dispute(sim: StripeSimulator, charge_id: str, reason: str, amount: int | None) -> Obj:
    """The cardholder disputes the charge: the amount is withdrawn from the balance that got
    the charge (the platform, or the connected account for a direct charge)."""
    charge = sim.state.charges[charge_id]
    if charge["disputed"]:
        return sim.state.disputes[charge["dispute"]]
    owner = sim.state.owner[charge_id]
    amount = charge["amount"] - charge["amount_refunded"] if amount is None else amount
    dispute: Obj = {
        "id": sim.new_id("dp"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge_id,
        "created": sim.now(),
        "currency": charge["currency"],
        "evidence": {"customer_email_address": None, "uncategorized_text": None},
        "evidence_details": {
            "due_by": sim.now() + DISPUTE_RESPONSE_DAYS * DAY,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "reason": reason,
        "status": "needs_response",
    }
    withdrawal = {"amount": -amount, "currency": charge["currency"], "id": sim.new_id("txn"),
                  "object": "balance_transaction", "reporting_category": "dispute",
                  "type": "adjustment"}  # fmt: skip
    dispute["balance_transactions"].append(withdrawal)
    sim.store(dispute, owner)
    charge.update(disputed=True, dispute=dispute["id"])
    sim.credit(owner, -amount, charge["currency"], source=dispute["id"])
    sim.emit("charge.dispute.created", dispute, account=owner)
    sim.emit("charge.dispute.funds_withdrawn", dispute, account=owner)
    return dispute


def close_dispute(sim: StripeSimulator, dispute_id: str, won: bool) -> Obj:
    dispute = sim.state.disputes[dispute_id]
    if dispute["status"] in ("won", "lost"):
        return dispute
    owner = sim.state.owner[dispute_id]
    previous = {"status": dispute["status"]}
    dispute["status"] = "won" if won else "lost"
    if won:
        reinstated = {"amount": dispute["amount"], "currency": dispute["currency"],
                      "id": sim.new_id("txn"), "object": "balance_transaction",
                      "reporting_category": "dispute_reversal", "type": "adjustment"}  # fmt: skip
        dispute["balance_transactions"].append(reinstated)
        sim.credit(owner, dispute["amount"], dispute["currency"], source=dispute_id)
        sim.emit("charge.dispute.funds_reinstated", dispute, account=owner)
    sim.emit("charge.dispute.closed", dispute, account=owner, previous_attributes=previous)
    return dispute


def retrieve_dispute(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("dispute", id, ctx.account)


def list_disputes(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> list[Obj]:
    return [
        d
        for d in sim.state.disputes.values()
        if sim.state.owner[d["id"]] == ctx.account
        and p.get("payment_intent") in (None, d["payment_intent"])
        and p.get("charge") in (None, d["charge"])
    ]


# --- payouts and time ---------------------------------------------------------------------------


def retrieve_payout(sim: StripeSimulator, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("payout", id, ctx.account)


def list_payouts(sim: StripeSimulator, ctx: RequestContext, p: Obj) -> list[Obj]:
    return [
        po
        for po in sim.state.payouts.values()
        if sim.state.owner[po["id"]] == ctx.account and p.get("status") in (None, po["status"])
    ]


def fail_payout(sim: StripeSimulator, payout_id: str, code: str) -> Obj:
    payout = sim.state.payouts[payout_id]
    owner = sim.state.owner[payout_id]
    if payout["status"] == "failed":
        return payout
    payout.update(status="failed", failure_code=code, failure_message="The bank refused it.")
    sim.credit(owner, payout["amount"], payout["currency"], source=payout_id)
    sim.emit("payout.failed", payout, account=owner)
    return payout


def _schedule_due(account: Obj) -> bool:
    return bool(
        account["payouts_enabled"]
        and account["settings"]["payouts"]["schedule"]["interval"] != "manual"
    )


def tick(sim: StripeSimulator) -> None:
    """What Stripe does as time passes: expire open Checkout Sessions past `expires_at`, pay
    out connected accounts' available balances on their schedule (daily here for any
    automatic schedule), and mark payouts paid on their arrival date."""
    from marketplace_api.stripe_simulator.payments import expire_session

    now = sim.now()
    for session in list(sim.state.checkout_sessions.values()):
        if session["status"] == "open" and sim.private(session["id"])["expires"] <= now:
            expire_session(sim, session, sim.state.owner[session["id"]])
    for sent in list(sim.state.payouts.values()):
        if sent["status"] in ("pending", "in_transit") and sent["arrival_date"] <= now:
            sent["status"] = "paid"
            sim.emit("payout.paid", sent, account=sim.state.owner[sent["id"]])
    for account in list(sim.state.accounts.values()):
        if not _schedule_due(account) or sim.private(account["id"]).get("deauthorized"):
            continue
        last = int(sim.private(account["id"]).get("last_payout_at") or account["created"])
        if now - last < DAY:
            continue
        for currency, amounts in sim.balances(account["id"]).items():
            if amounts["available"] <= 0:
                continue
            payout: Obj = {
                "id": sim.new_id("po"),
                "object": "payout",
                "amount": amounts["available"],
                "arrival_date": now + PAYOUT_TRANSIT,
                "automatic": True,
                "balance_transaction": sim.new_id("txn"),
                "created": now,
                "currency": currency,
                "destination": (account["external_accounts"]["data"] or [{"id": None}])[0]["id"],
                "failure_code": None,
                "failure_message": None,
                "livemode": False,
                "metadata": {},
                "method": "standard",
                "status": "pending",
                "type": "bank_account",
            }
            sim.store(payout, account["id"])
            sim.credit(account["id"], -payout["amount"], currency, source=payout["id"])
            sim.emit("payout.created", copy.deepcopy(payout), account=account["id"])
        sim.private(account["id"])["last_payout_at"] = now
