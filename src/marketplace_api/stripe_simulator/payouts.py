"""Payouts: made from connected accounts' available balances on their schedule, paid on their
arrival date, or failed by the bank."""

from __future__ import annotations

import copy

from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.engine import DAY, SimEngine
from marketplace_api.stripe_simulator.state import Obj

PAYOUT_TRANSIT = DAY


def retrieve_payout(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("payout", id, ctx.account)


def list_payouts(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    return sim.listed("payout", ctx.account, p, "status")


def fail_payout(sim: SimEngine, payout_id: str, code: str) -> Obj:
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


def pay_out_due(sim: SimEngine, now: int) -> None:
    """Mark payouts paid on their arrival date, then pay out connected accounts' available
    balances on their schedule (daily here for any automatic schedule)."""
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
