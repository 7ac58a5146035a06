"""Every handler binds its event to the Stripe object we recorded: a signed event naming one of
our rows but another object id, amount, currency or connected account changes nothing, is stored
`mismatched` (visible and filterable in the admin list), alerts the operator and answers 200."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.config import ChargeType
from marketplace_api.ledger.models import MoneyMovement
from marketplace_api.notifications.models import Notification
from marketplace_api.orders.models import FulfilmentStatus, Order, OrderStatus
from marketplace_api.payments.models import DuplicatePaymentRefund, Payment, PaymentStatus
from marketplace_api.refunds.models import (
    Refund,
    RefundOrigin,
    RefundReason,
    RefundStatus,
)
from marketplace_api.transfers.models import (
    ReleaseTrigger,
    ReversalStatus,
    Transfer,
    TransferReversal,
    TransferStatus,
)
from marketplace_api.vendors.models import Vendor
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.pipeline import process_due_events
from tests.conftest import AuthUser
from tests.fixtures.accounts import active_account
from tests.fixtures.catalog import make_vendor, payment_intent
from tests.fixtures.money import NOW, deliver, dispute_json, make_buyer, make_paid, refund_json
from tests.fixtures.stripe import event, stripe_id

ATTACKER_ACCOUNT = "acct_attacker0000000000"

# The tables whose rows hold money state; a mismatched event must leave every row as it was.
MONEY_TABLES = (
    "payments",
    "orders",
    "refunds",
    "transfers",
    "transfer_reversals",
    "disputes",
    "money_movements",
    "vendors",
)


async def money_state(session: AsyncSession) -> dict[str, list[Any]]:
    state = {}
    for table in MONEY_TABLES:
        query = f"SELECT to_jsonb(t) FROM {table} t ORDER BY t.id"  # noqa: S608 (constants)
        rows = await session.execute(text(query))
        state[table] = [row[0] for row in rows]
    return state


async def unpaid_payment(
    session: AsyncSession,
    *,
    amount: int = 10_000,
    charge_type: ChargeType = ChargeType.destination,
    checkout_session_id: str | None = None,
) -> Payment:
    """A payment waiting for the buyer, with its one pending order."""
    buyer = await make_buyer(session)
    vendor = await make_vendor(session)
    payment = Payment(
        buyer_id=buyer.id,
        charge_type=charge_type,
        currency="usd",
        amount=amount,
        platform_fee=amount // 10,
        stripe_payment_intent_id=stripe_id("pi"),
        stripe_account_id=vendor.stripe_account_id if charge_type is ChargeType.direct else None,
        checkout_session_id=checkout_session_id,
        checkout_session_seq=1 if checkout_session_id else 0,
        reservation_expires_at=NOW,
    )
    session.add(payment)
    await session.flush()
    session.add(
        Order(
            payment_id=payment.id,
            buyer_id=buyer.id,
            vendor_id=vendor.id,
            vendor_stripe_account_id=str(vendor.stripe_account_id),
            status=OrderStatus.pending_payment,
            fulfilment_status=FulfilmentStatus.unfulfilled,
            currency="usd",
            amount=amount,
            platform_fee=amount // 10,
            vendor_amount=amount - amount // 10,
            fee_bps=1000,
            reservation_expires_at=NOW,
        )
    )
    await session.commit()
    return payment


@dataclass
class Case:
    """A genuine signed event for one of our rows, and how each field can disagree with it."""

    event: dict[str, Any]
    tamper: dict[str, Callable[[dict[str, Any]], None]]


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(evt: dict[str, Any]) -> None:
        target = evt
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


OBJ = ("data", "object")
ACCOUNT = _set(("account",), ATTACKER_ACCOUNT)


def _money_tampers(amount_field: str = "amount") -> dict[str, Callable[[dict[str, Any]], None]]:
    return {
        "amount": _set((*OBJ, amount_field), 50),
        "currency": _set((*OBJ, "currency"), "eur"),
        "account": ACCOUNT,
    }


async def payment_intent_case(session: AsyncSession) -> Case:
    payment = await unpaid_payment(session)
    intent = payment_intent(
        amount=payment.amount,
        status="succeeded",
        intent_id=payment.stripe_payment_intent_id,
        metadata={"payment_id": str(payment.id)},
        latest_charge=stripe_id("ch"),
    )
    tamper = {"id": _set((*OBJ, "id"), "pi_attacker_other_intent"), **_money_tampers()}
    return Case(event("payment_intent.succeeded", intent), tamper)


async def direct_payment_intent_case(session: AsyncSession) -> Case:
    payment = await unpaid_payment(session, charge_type=ChargeType.direct)
    intent = payment_intent(
        amount=payment.amount,
        status="processing",
        intent_id=payment.stripe_payment_intent_id,
        metadata={"payment_id": str(payment.id)},
    )
    evt = event("payment_intent.processing", intent, account=payment.stripe_account_id)
    tamper = {
        "id": _set((*OBJ, "id"), "pi_attacker_other_intent"),
        **_money_tampers(),
        "platform instead of the vendor's account": lambda e: e.pop("account"),
    }
    return Case(evt, tamper)


async def checkout_session_case(session: AsyncSession) -> Case:
    payment = await unpaid_payment(session, checkout_session_id=stripe_id("cs_test"))
    obj = {
        "id": payment.checkout_session_id,
        "object": "checkout.session",
        "amount_total": payment.amount,
        "currency": "usd",
        "client_reference_id": str(payment.id),
        "metadata": {"payment_id": str(payment.id)},
        "payment_intent": stripe_id("pi"),
        "payment_status": "paid",
        "status": "complete",
    }
    tamper = {"id": _set((*OBJ, "id"), "cs_test_attacker"), **_money_tampers("amount_total")}
    return Case(event("checkout.session.completed", obj), tamper)


async def _pending_refund(session: AsyncSession, charge_type: ChargeType) -> tuple[Any, Refund]:
    paid = await make_paid(session, charge_type=charge_type)
    refund = Refund(
        order_id=paid.order.id,
        payment_id=paid.payment.id,
        vendor_id=paid.vendor.id,
        amount=600,
        currency="usd",
        vendor_share=540,
        fee_share=60,
        fee_refunded=60,
        reason=RefundReason.requested_by_customer,
        origin=RefundOrigin.admin,
        status=RefundStatus.pending,
        stripe_refund_id=stripe_id("re"),
    )
    session.add(refund)
    await session.commit()
    return paid, refund


async def refund_case(session: AsyncSession) -> Case:
    paid, refund = await _pending_refund(session, ChargeType.destination)
    obj = refund_json(
        amount=600,
        refund_id=refund.stripe_refund_id,
        metadata={"refund_id": str(refund.id)},
        charge=paid.payment.stripe_charge_id,
        payment_intent=paid.payment.stripe_payment_intent_id,
    )
    tamper = {
        "id": _set((*OBJ, "id"), "re_attacker"),
        **_money_tampers(),
        "charge": _set((*OBJ, "charge"), "ch_attacker"),
    }
    return Case(event("refund.updated", obj), tamper)


async def charge_refunded_case(session: AsyncSession) -> Case:
    paid, refund = await _pending_refund(session, ChargeType.direct)
    obj = refund_json(
        amount=600, refund_id=refund.stripe_refund_id, metadata={"refund_id": str(refund.id)}
    )
    charge = {"id": paid.payment.stripe_charge_id, "object": "charge", "refunds": {"data": [obj]}}
    evt = event("charge.refunded", charge, account=paid.payment.stripe_account_id)
    refund_obj = (*OBJ, "refunds", "data", 0)

    def nested(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def apply(e: dict[str, Any]) -> None:
            e["data"]["object"]["refunds"]["data"][0][field] = value

        return apply

    assert refund_obj  # the path the tampers below change
    tamper = {
        "id": nested("id", "re_attacker"),
        "amount": nested("amount", 6000),
        "currency": nested("currency", "eur"),
        "account": ACCOUNT,
    }
    return Case(evt, tamper)


async def transfer_case(session: AsyncSession) -> Case:
    paid = await make_paid(session)
    transfer = Transfer(
        order_id=paid.order.id,
        payment_id=paid.payment.id,
        vendor_id=paid.vendor.id,
        amount=1800,
        currency="usd",
        destination=str(paid.vendor.stripe_account_id),
        trigger=ReleaseTrigger.admin,
        stripe_transfer_id=stripe_id("tr"),
    )
    session.add(transfer)
    await session.commit()
    obj = {
        "id": transfer.stripe_transfer_id,
        "object": "transfer",
        "amount": 1800,
        "currency": "usd",
        "destination": transfer.destination,
        "metadata": {"transfer_id": str(transfer.id), "order_id": str(paid.order.id)},
        "reversals": {"data": []},
    }
    tamper = {
        "id": _set((*OBJ, "id"), "tr_attacker"),
        **_money_tampers(),
        "destination": _set((*OBJ, "destination"), ATTACKER_ACCOUNT),
    }
    return Case(event("transfer.created", obj), tamper)


async def reversal_case(session: AsyncSession) -> Case:
    paid = await make_paid(session)
    transfer = Transfer(
        order_id=paid.order.id,
        payment_id=paid.payment.id,
        vendor_id=paid.vendor.id,
        amount=1800,
        currency="usd",
        destination=str(paid.vendor.stripe_account_id),
        trigger=ReleaseTrigger.admin,
        status=TransferStatus.paid,
        stripe_transfer_id=stripe_id("tr"),
    )
    session.add(transfer)
    refund = Refund(
        order_id=paid.order.id,
        payment_id=paid.payment.id,
        vendor_id=paid.vendor.id,
        amount=556,
        currency="usd",
        vendor_share=500,
        fee_share=56,
        fee_refunded=0,
        reason=RefundReason.requested_by_customer,
        origin=RefundOrigin.admin,
        status=RefundStatus.succeeded,
        stripe_refund_id=stripe_id("re"),
    )
    session.add(refund)
    await session.flush()
    reversal = TransferReversal(
        transfer_id=transfer.id,
        order_id=paid.order.id,
        refund_id=refund.id,
        amount=500,
        currency="usd",
        status=ReversalStatus.pending,
        stripe_reversal_id=stripe_id("trr"),
    )
    session.add(reversal)
    await session.commit()
    rev = {
        "id": reversal.stripe_reversal_id,
        "object": "transfer_reversal",
        "amount": 500,
        "currency": "usd",
        "transfer": transfer.stripe_transfer_id,
        "metadata": {"reversal_id": str(reversal.id)},
    }
    obj = {
        "id": transfer.stripe_transfer_id,
        "object": "transfer",
        "amount": 1800,
        "amount_reversed": 500,
        "currency": "usd",
        "destination": transfer.destination,
        "metadata": {},
        "reversals": {"data": [rev]},
    }

    def nested(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def apply(e: dict[str, Any]) -> None:
            e["data"]["object"]["reversals"]["data"][0][field] = value

        return apply

    tamper = {
        "id": nested("id", "trr_attacker"),
        "amount": nested("amount", 1800),
        "currency": nested("currency", "eur"),
        "transfer": nested("transfer", "tr_attacker"),
    }
    return Case(event("transfer.reversed", obj), tamper)


async def dispute_case(session: AsyncSession) -> Case:
    paid = await make_paid(session, charge_type=ChargeType.direct)
    evt = event(
        "charge.dispute.created", dispute_json(paid), account=paid.payment.stripe_account_id
    )
    tamper = {
        "charge": _set((*OBJ, "charge"), "ch_attacker"),
        "amount": _set((*OBJ, "amount"), paid.payment.amount + 1),
        "currency": _set((*OBJ, "currency"), "eur"),
        "account": ACCOUNT,
    }
    return Case(evt, tamper)


async def account_case(session: AsyncSession) -> Case:
    vendor = await make_vendor(session, active=False)
    account_id = str(vendor.stripe_account_id)
    evt = event(
        "account.updated", active_account(account_id, vendor_id=vendor.id), account=account_id
    )

    def other_account(e: dict[str, Any]) -> None:
        e["data"]["object"]["id"] = e["account"] = ATTACKER_ACCOUNT

    return Case(evt, {"id": other_account, "account": ACCOUNT})


async def capability_case(session: AsyncSession) -> Case:
    vendor = await make_vendor(session, active=True)
    obj = {
        "id": "card_payments",
        "object": "capability",
        "account": vendor.stripe_account_id,
        "requested": True,
        "status": "inactive",
    }
    evt = event("capability.updated", obj, account=vendor.stripe_account_id)
    return Case(evt, {"account": _set((*OBJ, "account"), ATTACKER_ACCOUNT)})


CASES: dict[str, Callable[[AsyncSession], Awaitable[Case]]] = {
    "payment_intent": payment_intent_case,
    "payment_intent_direct": direct_payment_intent_case,
    "checkout_session": checkout_session_case,
    "refund": refund_case,
    "charge_refunded": charge_refunded_case,
    "transfer": transfer_case,
    "transfer_reversal": reversal_case,
    "dispute": dispute_case,
    "account": account_case,
    "capability": capability_case,
}
TAMPERS = {
    "payment_intent": ("id", "amount", "currency", "account"),
    "payment_intent_direct": (
        "id",
        "amount",
        "currency",
        "account",
        "platform instead of the vendor's account",
    ),
    "checkout_session": ("id", "amount", "currency", "account"),
    "refund": ("id", "amount", "currency", "account", "charge"),
    "charge_refunded": ("id", "amount", "currency", "account"),
    "transfer": ("id", "amount", "currency", "account", "destination"),
    "transfer_reversal": ("id", "amount", "currency", "transfer"),
    "dispute": ("charge", "amount", "currency", "account"),
    "account": ("id", "account"),
    "capability": ("account",),
}


@pytest.mark.parametrize(
    ("case", "field"), [(case, field) for case, fields in TAMPERS.items() for field in fields]
)
async def test_event_disagreeing_with_our_row_changes_nothing_and_is_set_aside(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: AuthUser,
    case: str,
    field: str,
) -> None:
    admin_email = admin.user.email
    built = await CASES[case](session)
    assert set(built.tamper) == set(TAMPERS[case])
    forged = copy.deepcopy(built.event)
    forged["id"] = stripe_id("evt")
    built.tamper[field](forged)
    before = await money_state(session)

    receipt = await deliver(client, forged, connect=bool(forged.get("account")))

    assert receipt["status"] == "mismatched"
    assert await money_state(session) == before
    stored = await session.get(StripeEvent, forged["id"], populate_existing=True)
    assert stored is not None
    assert stored.status is EventStatus.mismatched
    assert stored.last_error is not None
    assert stored.last_error.startswith("mismatch: ")
    alerts = (
        await session.execute(
            select(Notification.recipient).where(Notification.kind == "webhook_event_mismatched")
        )
    ).scalars()
    assert list(alerts) == [admin_email]
    # A redelivery of the forged event changes nothing either and is not applied again.
    again = await deliver(client, forged, connect=bool(forged.get("account")))
    assert (again["status"], again["duplicate"]) == ("mismatched", True)

    # The genuine event for the same row does move it: the check above could fail.
    genuine = await deliver(client, built.event, connect=bool(built.event.get("account")))
    assert genuine["status"] == "processed"
    assert await money_state(session) != before


async def test_attacker_intent_with_our_payment_id_is_not_applied(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser
) -> None:
    """The reported attack: another PaymentIntent of 50 cents, signed, naming our 10,000-cent
    payment in its metadata, must not mark it paid, record a charge or replace its PaymentIntent."""
    payment = await unpaid_payment(session, amount=10_000)
    payment_id, ours = payment.id, payment.stripe_payment_intent_id
    attack = event(
        "payment_intent.succeeded",
        payment_intent(
            amount=50,
            status="succeeded",
            intent_id="pi_attacker_other_intent",
            metadata={"payment_id": str(payment_id)},
            latest_charge="ch_attacker",
        ),
    )

    receipt = await deliver(client, attack)

    assert receipt["status"] == "mismatched"
    row = await session.get(Payment, payment_id, populate_existing=True)
    assert row is not None
    assert (row.status, row.stripe_payment_intent_id, row.stripe_charge_id) == (
        PaymentStatus.requires_payment,
        ours,
        None,
    )
    orders = (await session.execute(select(Order.status))).scalars().all()
    assert orders == [OrderStatus.pending_payment]
    assert (await session.execute(select(MoneyMovement))).first() is None

    # The operator finds it in the admin list, filtered by its status.
    listed = await client.get(
        "/v1/admin/webhook-events", params={"status": "mismatched"}, headers=admin.headers
    )
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [(i["id"], i["status"]) for i in items] == [(attack["id"], "mismatched")]
    assert "amount" in items[0]["last_error"]
    other = await client.get(
        "/v1/admin/webhook-events", params={"status": "processed"}, headers=admin.headers
    )
    assert attack["id"] not in [i["id"] for i in other.json()["items"]]


async def test_vendor_row_is_untouched_by_another_accounts_snapshot(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser
) -> None:
    """Metadata naming our vendor on an account that is not the vendor's is refused."""
    vendor = await make_vendor(session, active=False)
    vendor_id, account_id = vendor.id, vendor.stripe_account_id
    forged = event(
        "account.updated",
        active_account(ATTACKER_ACCOUNT, vendor_id=vendor_id),
        account=ATTACKER_ACCOUNT,
    )
    assert (await deliver(client, forged, connect=True))["status"] == "mismatched"
    row = await session.get(Vendor, vendor_id, populate_existing=True)
    assert row is not None
    assert (row.stripe_account_id, row.charges_enabled) == (account_id, False)


async def test_deferred_event_that_turns_out_foreign_is_set_aside_by_the_retry_job(
    client: httpx.AsyncClient,
    session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    admin: AuthUser,
) -> None:
    """An unknown PaymentIntent waits while the payment's Checkout Session has not told us its
    own; once it has (and it is another one), the retry job sets the event aside."""
    admin_email = admin.user.email
    payment = await unpaid_payment(session, amount=2000, checkout_session_id=stripe_id("cs_test"))
    payment_id, session_id = payment.id, payment.checkout_session_id
    metadata = {"payment_id": str(payment_id)}
    unknown = event(
        "payment_intent.succeeded",
        payment_intent(amount=2000, status="succeeded", intent_id="pi_unknown", metadata=metadata),
    )
    assert (await deliver(client, unknown))["status"] == "pending"  # may be the session's own
    completed = {
        "id": session_id,
        "object": "checkout.session",
        "amount_total": 2000,
        "currency": "usd",
        "metadata": metadata,
        "payment_intent": "pi_of_the_session",
        "payment_status": "paid",
        "status": "complete",
    }
    assert (await deliver(client, event("checkout.session.completed", completed)))[
        "status"
    ] == "processed"

    later = datetime.now(UTC) + timedelta(hours=2)
    assert await process_due_events(test_sessionmaker, now=later) == 1

    stored = await session.get(StripeEvent, unknown["id"], populate_existing=True)
    assert stored is not None
    assert stored.status is EventStatus.mismatched
    row = await session.get(Payment, payment_id, populate_existing=True)
    assert row is not None
    assert (row.status, row.stripe_payment_intent_id) == (
        PaymentStatus.succeeded,
        "pi_of_the_session",
    )
    assert (await session.execute(select(DuplicatePaymentRefund))).first() is None
    alerts = (
        await session.execute(
            select(Notification.recipient).where(Notification.kind == "webhook_event_mismatched")
        )
    ).scalars()
    assert list(alerts) == [admin_email]


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "10000"), ("amount", 10_000.0), ("currency", None), ("metadata", {"n": 1})],
)
async def test_object_with_a_field_of_another_type_is_set_aside(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: AuthUser,
    field: str,
    value: Any,
) -> None:
    """A signed event whose object does not have Stripe's types cannot become valid by retrying:
    it changes nothing and is stored `mismatched` (naming the field, never its value)."""
    case = await payment_intent_case(session)
    forged = copy.deepcopy(case.event)
    forged["id"] = stripe_id("evt")
    forged["data"]["object"][field] = value
    before = await money_state(session)

    receipt = await deliver(client, forged)

    assert receipt["status"] == "mismatched"
    assert await money_state(session) == before
    stored = await session.get(StripeEvent, forged["id"], populate_existing=True)
    assert stored is not None
    assert stored.last_error is not None
    assert stored.last_error.startswith("mismatch: PaymentIntent with invalid fields: ")
    assert field in stored.last_error
    assert (await deliver(client, case.event))["status"] == "processed"
