"""apply_payment_intent, the webhook handlers and the expiry job, from Stripe-shaped payloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.catalog.models import Listing
from marketplace_api.checkout.schemas import CheckoutCreate
from marketplace_api.checkout.service import place_checkout
from marketplace_api.config import Settings
from marketplace_api.deps import AppState
from marketplace_api.integrations.stripe.objects import PaymentIntent, parse_object
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.payments import events
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.service import expire_reservations
from marketplace_api.payments.state import apply_payment_intent
from marketplace_api.webhooks.dispatch import EventContext, RetryLater, load_handlers
from tests.conftest import AuthUser
from tests.fixtures.catalog import make_listing, make_vendor, payment_intent
from tests.fixtures.stripe import STRIPE_API_BASE, event, ok, stripe_error

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


async def _payment(
    session: AsyncSession, settings: Settings, buyer: AuthUser, *, stock: int = 3
) -> tuple[Payment, Listing]:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, price=2500, stock=stock)
    body = CheckoutCreate.model_validate(
        {"items": [{"listing_id": str(listing.id), "quantity": 2}]}
    )
    placed = await place_checkout(session, settings, buyer.user, body, now=T0)
    payment = await session.get_one(Payment, placed.payment.id)  # placed: transient objects
    payment.stripe_payment_intent_id = f"pi_{payment.id.hex}"
    await session.commit()
    return payment, listing


def _intent(payment: Payment, status: str, **extra: Any) -> dict[str, Any]:
    return payment_intent(
        amount=payment.amount,
        status=status,
        intent_id=payment.stripe_payment_intent_id,
        metadata={"payment_id": str(payment.id)},
        **extra,
    )


def _ctx(evt: dict[str, Any]) -> EventContext:
    return EventContext(
        id=evt["id"],
        type=evt["type"],
        account=evt.get("account"),
        created=datetime.fromtimestamp(evt["created"], UTC),
        livemode=evt["livemode"],
        object=evt["data"]["object"],
    )


async def _state(session: AsyncSession, payment: Payment, listing: Listing) -> tuple[Any, ...]:
    await session.refresh(payment)
    await session.refresh(listing)
    orders = (await session.execute(select(Order).where(Order.payment_id == payment.id))).scalars()
    statuses = set()
    for order in orders:
        await session.refresh(order)
        statuses.add(order.status)
    return payment.status, statuses, listing.stock_quantity


def test_payment_handlers_are_registered() -> None:
    handlers = load_handlers()
    for kind in (
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.processing",
        "payment_intent.requires_action",
        "payment_intent.canceled",
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
    ):
        assert handlers[kind].__module__ == events.__name__


async def test_succeeded_marks_paid_records_charge_and_transfer_once(
    session: AsyncSession, settings: Settings, buyer: AuthUser
) -> None:
    payment, listing = await _payment(session, settings, buyer)
    charge = {
        "id": "ch_1",
        "object": "charge",
        "transfer": "tr_1",
        "balance_transaction": {"id": "txn_1", "fee": 103},
    }
    evt = event("payment_intent.succeeded", _intent(payment, "succeeded", latest_charge=charge))
    await events.on_payment_intent(session, _ctx(evt))
    await events.on_payment_intent(session, _ctx(evt))  # duplicate delivery
    assert await _state(session, payment, listing) == (
        PaymentStatus.succeeded,
        {OrderStatus.paid},
        1,  # reserved stock stays sold
    )
    assert (payment.stripe_charge_id, payment.stripe_transfer_id, payment.stripe_fee) == (
        "ch_1",
        "tr_1",
        103,
    )
    # processing arriving late never moves it back
    late = event("payment_intent.processing", _intent(payment, "processing"), created=1)
    await events.on_payment_intent(session, _ctx(late))
    assert (await _state(session, payment, listing))[0] is PaymentStatus.succeeded


async def test_failed_attempt_keeps_the_reason_and_lets_the_buyer_retry(
    session: AsyncSession, settings: Settings, buyer: AuthUser
) -> None:
    payment, listing = await _payment(session, settings, buyer)
    t = int(T0.timestamp())
    processing = event("payment_intent.processing", _intent(payment, "processing"), created=t + 10)
    await events.on_payment_intent(session, _ctx(processing))
    assert (await _state(session, payment, listing))[0] is PaymentStatus.processing
    error = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
    }
    failed = event(
        "payment_intent.payment_failed",
        _intent(payment, "requires_payment_method", last_payment_error=error),
        created=t + 20,
    )
    await events.on_payment_intent(session, _ctx(failed))
    assert await _state(session, payment, listing) == (
        PaymentStatus.requires_payment,
        {OrderStatus.pending_payment},
        1,
    )
    assert payment.failure_code == "insufficient_funds"
    assert payment.failure_message == "Your card has insufficient funds."
    # an older requires_action arriving after the failure is ignored
    older = event(
        "payment_intent.requires_action", _intent(payment, "requires_action"), created=t + 5
    )
    await events.on_payment_intent(session, _ctx(older))
    assert (await _state(session, payment, listing))[0] is PaymentStatus.requires_payment


async def test_canceled_releases_stock_exactly_once(
    session: AsyncSession, settings: Settings, buyer: AuthUser
) -> None:
    payment, listing = await _payment(session, settings, buyer)
    evt = event("payment_intent.canceled", _intent(payment, "canceled"))
    for _ in range(3):
        await events.on_payment_intent(session, _ctx(evt))
    assert await _state(session, payment, listing) == (
        PaymentStatus.canceled,
        {OrderStatus.cancelled},
        3,
    )
    # a terminal state never moves: success after cancel is not applied
    won = event("payment_intent.succeeded", _intent(payment, "succeeded", latest_charge="ch_9"))
    await events.on_payment_intent(session, _ctx(won))
    assert (await _state(session, payment, listing))[0] is PaymentStatus.canceled


async def test_event_before_our_commit_retries_later_and_foreign_intents_are_ignored(
    session: AsyncSession,
) -> None:
    import uuid

    ours = payment_intent(
        amount=100, status="succeeded", metadata={"payment_id": str(uuid.uuid4())}
    )
    with pytest.raises(RetryLater):
        await apply_payment_intent(session, parse_object(PaymentIntent, ours), observed_at=T0)
    foreign = payment_intent(amount=100, status="succeeded")
    assert (
        await apply_payment_intent(session, parse_object(PaymentIntent, foreign), observed_at=T0)
        is None
    )


async def test_found_by_intent_id_when_metadata_is_missing(
    session: AsyncSession, settings: Settings, buyer: AuthUser
) -> None:
    payment, listing = await _payment(session, settings, buyer)
    intent = payment_intent(
        amount=payment.amount, status="requires_action", intent_id=payment.stripe_payment_intent_id
    )
    found = await apply_payment_intent(
        session, parse_object(PaymentIntent, intent), observed_at=T0 + timedelta(seconds=1)
    )
    assert found is not None
    assert found.id == payment.id
    assert (await _state(session, payment, listing))[0] is PaymentStatus.requires_action


async def test_checkout_session_events(
    session: AsyncSession, settings: Settings, buyer: AuthUser
) -> None:
    payment, listing = await _payment(session, settings, buyer)
    element_intent = payment.stripe_payment_intent_id
    payment.checkout_session_seq, payment.checkout_session_id = 1, "cs_test_1"
    await session.commit()
    session_obj = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "amount_total": payment.amount,
        "currency": payment.currency,
        "client_reference_id": str(payment.id),
        "metadata": {"payment_id": str(payment.id)},
        "payment_intent": "pi_from_checkout",
        "payment_status": "unpaid",
        "status": "complete",
    }
    await events.on_checkout_session_paid(
        session, _ctx(event("checkout.session.completed", session_obj))
    )
    await session.refresh(payment)
    assert payment.checkout_payment_intent_id == "pi_from_checkout"
    assert payment.status is PaymentStatus.requires_payment  # not paid from an unpaid session
    await events.on_checkout_session_payment_failed(
        session, _ctx(event("checkout.session.async_payment_failed", session_obj))
    )
    await session.refresh(payment)
    assert payment.failure_code == "async_payment_failed"
    paid = {**session_obj, "payment_status": "paid"}
    await events.on_checkout_session_paid(
        session, _ctx(event("checkout.session.async_payment_succeeded", paid))
    )
    assert await _state(session, payment, listing) == (
        PaymentStatus.succeeded,
        {OrderStatus.paid},
        1,
    )
    assert payment.stripe_payment_intent_id == "pi_from_checkout"
    # The Payment Element's PaymentIntent is still known as ours (a late success: a duplicate).
    assert payment.replaced_payment_intent_id == element_intent


async def test_checkout_session_expired_releases_only_without_another_open_intent(
    session: AsyncSession, settings: Settings, buyer: AuthUser
) -> None:
    payment, listing = await _payment(session, settings, buyer)
    expired = {
        "id": "cs_test_2",
        "object": "checkout.session",
        "amount_total": payment.amount,
        "currency": payment.currency,
        "metadata": {"payment_id": str(payment.id)},
        "status": "expired",
    }
    await events.on_checkout_session_expired(
        session, _ctx(event("checkout.session.expired", expired))
    )
    assert (await _state(session, payment, listing))[0] is PaymentStatus.requires_payment
    payment.stripe_payment_intent_id = None
    await session.commit()
    await events.on_checkout_session_expired(
        session, _ctx(event("checkout.session.expired", expired))
    )
    assert await _state(session, payment, listing) == (
        PaymentStatus.expired,
        {OrderStatus.expired},
        3,
    )


async def test_expiry_cancels_the_intent_and_releases_but_a_success_wins(
    session: AsyncSession,
    settings: Settings,
    app_state: AppState,
    make_user: Any,
    stripe_api: respx.MockRouter,
) -> None:
    gateway = app_state.stripe
    assert gateway is not None
    buyer = await make_user("buyer")
    stale, stale_listing = await _payment(session, settings, buyer)
    winner, winner_listing = await _payment(session, settings, buyer)
    stale_pi, winner_pi = stale.stripe_payment_intent_id, winner.stripe_payment_intent_id
    cancel_stale = stripe_api.post(f"{STRIPE_API_BASE}/v1/payment_intents/{stale_pi}/cancel").mock(
        return_value=ok(_intent(stale, "canceled"))
    )
    stripe_api.post(f"{STRIPE_API_BASE}/v1/payment_intents/{winner_pi}/cancel").mock(
        return_value=stripe_error(400, code="payment_intent_unexpected_state")
    )
    stripe_api.get(url__regex=rf"{STRIPE_API_BASE}/v1/payment_intents/{winner_pi}(\?.*)?$").mock(
        return_value=ok(_intent(winner, "succeeded", latest_charge="ch_w"))
    )
    now = T0 + timedelta(seconds=settings.reservation_ttl_seconds + 1)

    assert await expire_reservations(session, gateway, now=now) == 1

    assert (
        cancel_stale.calls.last.request.headers["Idempotency-Key"] == f"payment:{stale.id}:cancel"
    )
    assert await _state(session, stale, stale_listing) == (
        PaymentStatus.expired,
        {OrderStatus.expired},
        3,
    )
    assert await _state(session, winner, winner_listing) == (
        PaymentStatus.succeeded,
        {OrderStatus.paid},
        1,
    )
    assert await expire_reservations(session, gateway, now=now) == 0  # nothing left to do
    assert cancel_stale.call_count == 1
