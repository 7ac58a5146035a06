"""Transfers to connected accounts (from the available balance, or from a charge with
`source_transaction`) and their reversals."""

from __future__ import annotations

from marketplace_api.stripe_simulator.accounts import active_account
from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.engine import NO_REQUEST, EventRequest, SimEngine
from marketplace_api.stripe_simulator.errors import invalid, missing_parameter, no_such
from marketplace_api.stripe_simulator.money import check_currency, check_positive
from marketplace_api.stripe_simulator.state import Obj


def proportional(part: int, of: int, total: int) -> int:
    """`of * part / total`, rounded half up (Stripe's proportional reversals and fee refunds)."""
    return (of * part * 2 + total) // (total * 2)


def new_transfer(
    sim: SimEngine,
    *,
    amount: int,
    currency: str,
    destination: str,
    source_transaction: str | None,
    transfer_group: str | None,
    metadata: Obj,
    request: EventRequest = NO_REQUEST,
) -> Obj:
    transfer = sim.money_object(
        "tr", "transfer", amount, currency, amount_reversed=0, description=None,
        destination=destination, livemode=False, metadata=metadata, reversed=False,
        source_transaction=source_transaction, source_type="card", transfer_group=transfer_group,
    )  # fmt: skip
    transfer_id = transfer["id"]
    transfer["destination_payment"] = sim.new_id("py")
    transfer["reversals"] = sim.list_object(f"/v1/transfers/{transfer_id}/reversals", [])
    sim.store(transfer)
    # Funds transferred from a charge follow the charge's availability.
    sim.credit(None, -amount, currency, source=transfer_id, like=source_transaction)
    sim.credit(destination, amount, currency, source=transfer_id, like=source_transaction)
    sim.emit("transfer.created", transfer, request=request)
    return transfer


def create_transfer(sim: SimEngine, ctx: RequestContext, p: Obj) -> Obj:
    if ctx.account is not None:
        raise invalid("Transfers are made by the platform, without Stripe-Account.")
    if "amount" not in p:
        raise missing_parameter("amount")
    check_positive(p["amount"])
    currency = check_currency(p["currency"])
    active_account(sim, p["destination"], "transfers", "destination")
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


def retrieve_transfer(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("transfer", id, ctx.account)


def list_transfers(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    # Transfers live on the platform: a request with `Stripe-Account` lists none.
    return sim.listed("transfer", ctx.account, p, "destination", "transfer_group")


def reverse(
    sim: SimEngine,
    transfer: Obj,
    amount: int,
    metadata: Obj,
    *,
    source_refund: str | None = None,
    request: EventRequest = NO_REQUEST,
) -> Obj:
    remaining = transfer["amount"] - transfer["amount_reversed"]
    if amount > remaining:
        raise invalid(
            f"Transfer reversal amount ({amount}) is greater than the amount that can still be "
            f"reversed ({remaining}).",
            param="amount",
        )
    reversal = sim.money_object(
        "trr",
        "transfer_reversal",
        amount,
        transfer["currency"],
        metadata=metadata,
        source_refund=source_refund,
        transfer=transfer["id"],
    )
    reversal["destination_payment_refund"] = sim.new_id("pyr")
    sim.store(reversal)
    transfer["amount_reversed"] += amount
    transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
    transfer["reversals"]["data"].insert(0, reversal)
    currency, like = transfer["currency"], transfer["id"]
    sim.credit(transfer["destination"], -amount, currency, source=reversal["id"], like=like)
    sim.credit(None, amount, currency, source=reversal["id"], like=like)
    sim.emit("transfer.reversed", transfer, request=request)
    return reversal


def create_reversal(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    transfer = sim.get("transfer", id, ctx.account)
    amount = p.get("amount", transfer["amount"] - transfer["amount_reversed"])
    check_positive(amount)
    return reverse(sim, transfer, amount, p.get("metadata") or {}, request=ctx.request)


def list_reversals(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> list[Obj]:
    return list(sim.get("transfer", id, ctx.account)["reversals"]["data"])


def retrieve_reversal(sim: SimEngine, ctx: RequestContext, p: Obj, id: str, reversal: str) -> Obj:
    transfer = sim.get("transfer", id, ctx.account)
    for item in transfer["reversals"]["data"]:
        if item["id"] == reversal:
            return dict(item)
    raise no_such("transfer reversal", reversal)
