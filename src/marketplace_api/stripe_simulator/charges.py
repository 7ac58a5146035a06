"""Charges: the one a confirmation makes with a test payment method, and what its money does
when it succeeds (the platform or the connected account is credited, the destination transfer
and the application fee are made)."""

from __future__ import annotations

from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.engine import AVAILABILITY_DELAY, SimEngine
from marketplace_api.stripe_simulator.state import Obj
from marketplace_api.stripe_simulator.transfers import new_transfer

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


DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
}


def new_charge(
    sim: SimEngine, intent: Obj, pm_id: str, brand: str, last4: str, owner: str | None
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
        "source_transfer": None,
        "status": "succeeded",
        "transfer": None,
        "transfer_data": intent.get("transfer_data"),
        "transfer_group": intent.get("transfer_group"),
    }  # fmt: skip
    return sim.store(charge, owner)


def settle_charge(sim: SimEngine, intent: Obj, charge: Obj, owner: str | None) -> None:
    """Money of a successful charge: to the platform (destination, separate) or the connected
    account (direct); the destination transfer; the application fee to the platform."""
    amount, currency, fee = charge["amount"], charge["currency"], intent["application_fee_amount"]
    sim.credit(owner, amount, currency, source=charge["id"], delay=AVAILABILITY_DELAY)
    destination = (intent.get("transfer_data") or {}).get("destination")
    fee_account = owner
    if destination is not None:
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


def retrieve_charge(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("charge", id, ctx.account)


def list_charges(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    return sim.listed("charge", ctx.account, p, "payment_intent", "transfer_group")
