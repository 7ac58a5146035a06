"""A payment paid twice (its Checkout Session's and its Payment Element's PaymentIntent both
succeeded) is not a mismatch: the second PaymentIntent is refunded whole, once, outside any
transaction with a key derived from it, recorded in the ledger, and buyer and operator are told."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MoneyMovement
from marketplace_api.notifications.models import Notification
from marketplace_api.payments.duplicates import refund_due_duplicates
from marketplace_api.payments.models import (
    DuplicatePaymentRefund,
    DuplicateRefundStatus,
    Payment,
    PaymentStatus,
)
from marketplace_api.refunds.service import retry_failed_refunds
from tests.conftest import AuthUser
from tests.fixtures.catalog import payment_intent
from tests.fixtures.money import deliver, metadata_of, refund_json
from tests.fixtures.stripe import event, form, stripe_error, stripe_id
from tests.webhooks.test_binding import unpaid_payment


def _refund_answer(status: str = "succeeded") -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        fields = form(request)
        return httpx.Response(
            200,
            json=refund_json(
                amount=int(fields["amount"]),
                status=status,
                metadata=metadata_of(request),
                refund_id="re_dup_" + request.headers["Idempotency-Key"][-12:],
                payment_intent=fields["payment_intent"],
            ),
        )

    return answer


async def _paid_twice(
    client: httpx.AsyncClient, session: AsyncSession, charge_type: ChargeType
) -> tuple[Payment, str, dict[str, Any]]:
    """Paid by the Payment Element's PaymentIntent, then its Checkout Session paid too."""
    payment = await unpaid_payment(
        session, amount=2000, charge_type=charge_type, checkout_session_id=stripe_id("cs_test")
    )
    account = payment.stripe_account_id
    connect = account is not None
    metadata = {"payment_id": str(payment.id)}
    element = payment_intent(
        amount=2000,
        status="succeeded",
        intent_id=payment.stripe_payment_intent_id,
        metadata=metadata,
        latest_charge=stripe_id("ch"),
    )
    assert (
        await deliver(
            client, event("payment_intent.succeeded", element, account=account), connect=connect
        )
    )["status"] == "processed"
    checkout_intent = stripe_id("pi")
    completed = {
        "id": payment.checkout_session_id,
        "object": "checkout.session",
        "amount_total": 2000,
        "currency": "usd",
        "metadata": metadata,
        "payment_intent": checkout_intent,
        "payment_status": "paid",
        "status": "complete",
    }
    assert (
        await deliver(
            client, event("checkout.session.completed", completed, account=account), connect=connect
        )
    )["status"] == "processed"
    second = payment_intent(
        amount=2000,
        status="succeeded",
        intent_id=checkout_intent,
        metadata=metadata,
        latest_charge="ch_duplicate",
    )
    return payment, checkout_intent, event("payment_intent.succeeded", second, account=account)


@pytest.mark.parametrize(
    "charge_type", [ChargeType.destination, ChargeType.direct, ChargeType.separate]
)
async def test_second_successful_intent_is_refunded_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    admin: AuthUser,
    charge_type: ChargeType,
) -> None:
    admin_email = admin.user.email
    payment, duplicate_intent, second = await _paid_twice(client, session, charge_type)
    payment_id, kept = payment.id, payment.stripe_payment_intent_id
    account = payment.stripe_account_id
    connect = account is not None
    route = stripe_api.post("/v1/refunds").mock(side_effect=_refund_answer())

    # The success of the second PaymentIntent, delivered three times (twice as one event).
    assert (await deliver(client, second, connect=connect))["status"] == "processed"
    assert (await deliver(client, second, connect=connect))["duplicate"] is True
    again = second | {"id": stripe_id("evt")}
    assert (await deliver(client, again, connect=connect))["status"] == "processed"
    assert route.call_count == 0  # never from the webhook's transaction

    now = datetime.now(UTC)
    assert app_state.stripe is not None
    assert await refund_due_duplicates(test_sessionmaker, app_state.stripe, now=now) == 1
    assert await refund_due_duplicates(test_sessionmaker, app_state.stripe, now=now) == 0
    assert (
        await retry_failed_refunds(
            test_sessionmaker, app_state.stripe, now=now, settings=app_state.settings
        )
        == 0
    )

    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["Idempotency-Key"] == f"duplicate_payment:{duplicate_intent}:refund"
    assert request.headers.get("Stripe-Account") == (account if connect else None)
    sent = form(request)
    row = (await session.execute(select(DuplicatePaymentRefund))).scalar_one()
    expected = {
        "payment_intent": duplicate_intent,
        "amount": "2000",
        "reason": "duplicate",
        "metadata[duplicate_refund_id]": str(row.id),
        "metadata[payment_id]": str(payment_id),
    }
    if charge_type is ChargeType.destination:
        expected["reverse_transfer"] = "true"
    if charge_type is not ChargeType.separate:
        expected["refund_application_fee"] = "true"
    assert sent == expected

    await session.refresh(row)
    refund_id = "re_dup_" + request.headers["Idempotency-Key"][-12:]
    assert (row.status, row.stripe_refund_id) == (DuplicateRefundStatus.succeeded, refund_id)
    # Stripe's webhook for the same refund changes nothing more.
    refund_obj = refund_json(
        amount=2000,
        refund_id=row.stripe_refund_id,
        metadata={"duplicate_refund_id": str(row.id), "payment_id": str(payment_id)},
        payment_intent=duplicate_intent,
    )
    refunded = event("refund.updated", refund_obj, account=account, created=int(time.time()))
    assert (await deliver(client, refunded, connect=connect))["status"] == "processed"

    kept_payment = await session.get(Payment, payment_id, populate_existing=True)
    assert kept_payment is not None
    assert (kept_payment.status, kept_payment.stripe_payment_intent_id) == (
        PaymentStatus.succeeded,
        kept,
    )
    assert kept_payment.amount_refunded == 0  # the kept payment is untouched
    # The ledger: the duplicate's charge and its refund, once each; the payment still balances.
    dup_rows = (
        await session.execute(
            select(MoneyMovement.kind, MoneyMovement.amount).where(
                MoneyMovement.details["duplicate_payment_intent"].astext == duplicate_intent
            )
        )
    ).all()
    kinds = sorted((k.value, a) for k, a in dup_rows)
    if charge_type is ChargeType.separate:
        assert kinds == [("charge", 2000), ("refund", -2000)]
    else:
        assert kinds == sorted(
            [
                ("charge", 2000),
                ("platform_fee", 200),
                ("transfer", 1800),
                ("refund", -2000),
                ("refund_fee_share", -200),
                ("transfer_reversal", -1800),
            ]
        )
    balance = await ledger.payment_balance(session, kept_payment)
    assert balance.charge + balance.refunds == 2000
    # Buyer told once; the operator told it happened and that it was refunded.
    sent_mail = (await session.execute(select(Notification.kind, Notification.recipient))).all()
    buyer_mails = [r for k, r in sent_mail if k == "duplicate_payment_refunded"]
    assert len(buyer_mails) == 1
    assert buyer_mails[0] != admin_email
    operator = sorted(k for k, r in sent_mail if r == admin_email)
    assert operator == ["operator_alert", "operator_alert"]


async def test_refused_duplicate_refund_fails_and_alerts_the_operator(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    admin: AuthUser,
) -> None:
    _, _, second = await _paid_twice(client, session, ChargeType.destination)
    route = stripe_api.post("/v1/refunds").mock(
        return_value=stripe_error(400, code="charge_already_refunded")
    )
    await deliver(client, second)
    assert app_state.stripe is not None
    now = datetime.now(UTC)
    await refund_due_duplicates(test_sessionmaker, app_state.stripe, now=now)
    await refund_due_duplicates(test_sessionmaker, app_state.stripe, now=now)
    assert route.call_count == 1
    row = (
        await session.execute(
            select(DuplicatePaymentRefund).execution_options(populate_existing=True)
        )
    ).scalar_one()
    assert (row.status, row.failure_reason) == (
        DuplicateRefundStatus.failed,
        "charge_already_refunded",
    )
    titles = (
        await session.execute(
            select(Notification.context["title"].astext).where(
                Notification.kind == "operator_alert"
            )
        )
    ).scalars()
    assert sorted(titles) == [
        "A duplicate payment could not be refunded",
        "A payment was paid twice: the duplicate is being refunded",
    ]


async def test_unknown_intent_on_a_paid_payment_is_a_mismatch_not_a_duplicate(
    client: httpx.AsyncClient,
    session: AsyncSession,
    stripe_api: respx.MockRouter,
) -> None:
    """Only a PaymentIntent we stored on the payment is a duplicate; any other is refused."""
    _, _, second = await _paid_twice(client, session, ChargeType.destination)
    stranger = second | {"id": stripe_id("evt")}
    stranger["data"] = {"object": second["data"]["object"] | {"id": "pi_never_ours"}}
    assert (await deliver(client, stranger))["status"] == "mismatched"
    assert (await session.execute(select(DuplicatePaymentRefund))).first() is None
