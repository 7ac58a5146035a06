"""Disputes: opened by the cardholder (or a `pm_card_createDispute` payment), closed won or
lost, with the funds withdrawn and reinstated as Stripe does."""

from __future__ import annotations

from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.engine import DAY, SimEngine
from marketplace_api.stripe_simulator.state import Obj

DISPUTE_RESPONSE_DAYS = 7


def open_dispute(sim: SimEngine, charge_id: str, reason: str, amount: int | None) -> Obj:
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


def close_dispute(sim: SimEngine, dispute_id: str, won: bool) -> Obj:
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


def retrieve_dispute(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("dispute", id, ctx.account)


def list_disputes(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    return sim.listed("dispute", ctx.account, p, "payment_intent", "charge")
