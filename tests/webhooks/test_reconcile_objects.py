"""Every object we keep converges without its webhook: the create answer or the event is lost,
`reconcile` asks Stripe, the row reaches Stripe's state through the same state machine and ledger
writes as the webhook; a second run moves nothing; a run takes at most `batch_size` rows of a
kind, the ones checked longest ago first."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.disputes.models import Dispute
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.reconcile.service import ReconcileReport, reconcile
from marketplace_api.refunds import service as refunds
from marketplace_api.refunds.models import Refund, RefundOrigin, RefundStatus
from marketplace_api.refunds.schemas import RefundCreate
from marketplace_api.release.service import release_order
from marketplace_api.transfers.models import (
    ReleaseTrigger,
    ReversalStatus,
    Transfer,
    TransferReversal,
    TransferStatus,
)
from marketplace_api.vendors.models import Vendor, VendorStatus
from tests.conftest import AuthUser
from tests.fixtures import accounts as vendor_factories
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.money import (
    NOW,
    dispute_json,
    make_paid,
    metadata_of,
    refund_handler,
    refund_json,
    reversal_handler,
    transfer_handler,
)
from tests.fixtures.stripe import form, ok, stripe_error, stripe_id
from tests.fixtures.stripe_mocks import (
    checkout_session_handler,
    mock_create_intent,
)
from tests.webhooks.reconcile_mocks import mock_active_accounts, stripe_list

Run = Callable[..., Awaitable[ReconcileReport]]


@pytest.fixture
def run(test_sessionmaker: async_sessionmaker[AsyncSession], app_state: AppState) -> Run:
    """`reconcile` an hour from now (rows made by the test are old enough to be checked)."""
    gateway = app_state.stripe
    assert gateway is not None

    async def run(**kwargs: Any) -> ReconcileReport:
        return await reconcile(
            test_sessionmaker, gateway, now=datetime.now(UTC) + timedelta(hours=1), **kwargs
        )

    return run


@pytest.fixture
def gateway(app_state: AppState) -> StripeGateway:
    assert app_state.stripe is not None
    return app_state.stripe


@pytest.fixture
def lists(stripe_api: respx.MockRouter) -> dict[str, list[dict[str, Any]]]:
    """What Stripe lists: platform disputes, and per connected account payouts and disputes."""
    listed: dict[str, list[dict[str, Any]]] = {"disputes": [], "payouts": []}

    def answer(kind: str) -> Any:
        def handle(request: httpx.Request) -> httpx.Response:
            account = request.headers.get("Stripe-Account")
            data = [o for o in listed[kind] if o.get("_account") == account]
            return stripe_list(f"/v1/{kind}", [_public(o) for o in data])

        return handle

    stripe_api.get("/v1/disputes").mock(side_effect=answer("disputes"))
    stripe_api.get("/v1/payouts").mock(side_effect=answer("payouts"))
    return listed


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


async def _ledger(session: AsyncSession, kind: MovementKind, **where: Any) -> list[int]:
    query = select(MoneyMovement.amount).where(MoneyMovement.kind == kind)
    for column, value in where.items():
        query = query.where(getattr(MoneyMovement, column) == value)
    return list((await session.execute(query)).scalars())


async def _fresh(session: AsyncSession, model: Any, row_id: uuid.UUID) -> Any:
    row = await session.get(model, row_id, populate_existing=True)
    assert row is not None
    return row


async def _refund(
    session: AsyncSession, gateway: StripeGateway, app_state: AppState, order: Order, amount: int
) -> Refund:
    result = await refunds.create_refund(
        session,
        gateway,
        app_state.settings,
        order.id,
        RefundCreate(amount=amount),
        origin=RefundOrigin.admin,
        actor_id=None,
        now=NOW,
    )
    return await _fresh(session, Refund, result.id)


# --- refunds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("charge_type", list(ChargeType))
async def test_a_refund_whose_create_answer_was_lost_converges(
    session: AsyncSession,
    gateway: StripeGateway,
    app_state: AppState,
    stripe_api: respx.MockRouter,
    lists: dict[str, Any],
    run: Run,
    charge_type: ChargeType,
) -> None:
    paid = await make_paid(session, charge_type=charge_type, amounts=(3000,))
    mock_active_accounts(stripe_api)
    # Stripe made the refund, but its answer never reached us.
    made: list[dict[str, Any]] = []

    def lost_answer(request: httpx.Request) -> httpx.Response:
        made.append(refund_json(**_refund_fields(request)))
        return stripe_error(500, type_="api_error")

    stripe_api.post("/v1/refunds").mock(side_effect=lost_answer)
    refund = await _refund(session, gateway, app_state, paid.order, 1200)
    assert refund.status is RefundStatus.pending
    assert refund.stripe_refund_id is None
    listing = stripe_api.get("/v1/refunds").mock(
        side_effect=lambda request: stripe_list("/v1/refunds", made)
    )

    first = await run()

    refund = await _fresh(session, Refund, refund.id)
    assert refund.status is RefundStatus.succeeded
    assert refund.stripe_refund_id == made[0]["id"]
    assert (await _fresh(session, Payment, paid.payment.id)).amount_refunded == 1200
    assert await _ledger(session, MovementKind.refund, payment_id=paid.payment.id) == [-1200]
    assert first.objects["refunds"].changed == [f"{refund.id}: pending -> succeeded"]
    request = listing.calls.last.request
    assert request.url.params["payment_intent"] == paid.payment.stripe_payment_intent_id
    expected_account = paid.payment.stripe_account_id if charge_type is ChargeType.direct else None
    assert request.headers.get("Stripe-Account") == expected_account

    second = await run()
    assert second.objects["refunds"].checked == 0  # settled: not looked at again
    assert await _ledger(session, MovementKind.refund, payment_id=paid.payment.id) == [-1200]
    assert (await _fresh(session, Payment, paid.payment.id)).amount_refunded == 1200


def _refund_fields(request: httpx.Request) -> dict[str, Any]:
    fields = form(request)
    return {
        "amount": int(fields["amount"]),
        "metadata": metadata_of(request),
        "payment_intent": fields["payment_intent"],
        "status": "succeeded",
    }


async def test_a_pending_refund_is_retrieved_and_a_late_webhook_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    gateway: StripeGateway,
    app_state: AppState,
    stripe_api: respx.MockRouter,
    lists: dict[str, Any],
    run: Run,
) -> None:
    from tests.fixtures.money import deliver
    from tests.fixtures.stripe import event

    paid = await make_paid(session, charge_type=ChargeType.destination, amounts=(3000,))
    mock_active_accounts(stripe_api)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler(status="pending"))
    refund = await _refund(session, gateway, app_state, paid.order, 500)
    assert refund.status is RefundStatus.pending
    assert refund.stripe_refund_id
    done = refund_json(
        amount=500,
        refund_id=refund.stripe_refund_id,
        metadata={"refund_id": str(refund.id)},
        payment_intent=paid.payment.stripe_payment_intent_id,
    )
    stripe_api.get(f"/v1/refunds/{refund.stripe_refund_id}").mock(return_value=ok(done))

    await run()
    assert (await _fresh(session, Refund, refund.id)).status is RefundStatus.succeeded

    # The webhook that was late arrives now: applied once already, nothing moves twice.
    await deliver(client, event("refund.updated", done))
    await run()
    assert await _ledger(session, MovementKind.refund, payment_id=paid.payment.id) == [-500]
    assert (await _fresh(session, Payment, paid.payment.id)).amount_refunded == 500


# --- transfers and reversals -------------------------------------------------------------------


async def test_a_transfer_and_a_reversal_whose_answers_were_lost_converge(
    session: AsyncSession,
    gateway: StripeGateway,
    app_state: AppState,
    stripe_api: respx.MockRouter,
    lists: dict[str, Any],
    run: Run,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.separate, amounts=(4000,))
    mock_active_accounts(stripe_api)
    made: dict[str, list[dict[str, Any]]] = {"transfers": [], "reversals": []}

    def lost(kind: str, make: Callable[[httpx.Request], httpx.Response]) -> Any:
        def handle(request: httpx.Request, **kwargs: str) -> httpx.Response:
            made[kind].append(make(request).json())
            return stripe_error(500, type_="api_error")

        return handle

    stripe_api.post("/v1/transfers").mock(side_effect=lost("transfers", transfer_handler))
    transfer = await release_order(
        session, gateway, paid.order.id, trigger=ReleaseTrigger.admin, now=NOW
    )
    assert transfer.status is TransferStatus.pending
    list_transfers = stripe_api.get("/v1/transfers").mock(
        side_effect=lambda request: stripe_list("/v1/transfers", made["transfers"])
    )

    first = await run()

    transfer = await _fresh(session, Transfer, transfer.id)
    assert transfer.status is TransferStatus.paid
    assert transfer.stripe_transfer_id == made["transfers"][0]["id"]
    assert list_transfers.calls.last.request.url.params["transfer_group"] == (
        paid.payment.transfer_group
    )
    assert first.objects["transfers"].changed == [f"{transfer.id}: pending -> paid"]
    assert await _ledger(session, MovementKind.transfer, order_id=paid.order.id) == [
        transfer.amount
    ]

    # A refund after the release: the reversal's answer is lost too.
    tr = str(transfer.stripe_transfer_id)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    stripe_api.post(f"/v1/transfers/{tr}/reversals").mock(
        side_effect=lost("reversals", lambda request: reversal_handler(request, tr))
    )
    refund = await _refund(session, gateway, app_state, paid.order, 1000)
    assert refund.status is RefundStatus.succeeded
    reversal = (
        await session.execute(
            select(TransferReversal).where(TransferReversal.refund_id == refund.id)
        )
    ).scalar_one()
    assert reversal.status is ReversalStatus.pending
    stripe_api.get(f"/v1/transfers/{tr}/reversals").mock(
        side_effect=lambda request: stripe_list(f"/v1/transfers/{tr}/reversals", made["reversals"])
    )

    await run()
    await run()

    reversal = await _fresh(session, TransferReversal, reversal.id)
    assert reversal.status is ReversalStatus.succeeded
    assert reversal.stripe_reversal_id == made["reversals"][0]["id"]
    assert (await _fresh(session, Transfer, transfer.id)).amount_reversed == reversal.amount
    assert await _ledger(session, MovementKind.transfer_reversal, order_id=paid.order.id) == [
        -reversal.amount
    ]
    assert await _ledger(session, MovementKind.transfer, order_id=paid.order.id) == [
        transfer.amount
    ]


# --- Checkout Sessions -------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["complete", "expired", "open"])
async def test_a_checkout_session_whose_events_were_lost_converges(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
    lists: dict[str, Any],
    run: Run,
    outcome: str,
) -> None:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, price=1500, stock=5)
    mock_active_accounts(stripe_api)
    mock_create_intent(stripe_api)
    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )
    assert response.status_code == 201, response.text
    payment_id, order_id = response.json()["payment_id"], response.json()["orders"][0]["id"]
    stripe_api.post("/v1/checkout/sessions").mock(side_effect=checkout_session_handler)
    response = await client.post(
        f"/v1/buyer/orders/{order_id}/checkout-session", headers=buyer.headers
    )
    assert response.status_code == 200, response.text
    payment = await _fresh(session, Payment, uuid.UUID(payment_id))
    intent_id = stripe_id("pi")
    paid_session = {
        "id": payment.checkout_session_id,
        "object": "checkout.session",
        "mode": "payment",
        "amount_total": 1500,
        "currency": payment.currency,
        "status": outcome,
        "payment_status": "paid" if outcome == "complete" else "unpaid",
        "payment_intent": intent_id if outcome == "complete" else None,
        "client_reference_id": payment_id,
        "metadata": {"payment_id": payment_id},
    }
    stripe_api.get(f"/v1/checkout/sessions/{payment.checkout_session_id}").mock(
        return_value=ok(paid_session)
    )
    # The Payment Element's PaymentIntent was never paid.
    stripe_api.get(f"/v1/payment_intents/{payment.stripe_payment_intent_id}").mock(
        return_value=ok(
            {
                "id": payment.stripe_payment_intent_id,
                "object": "payment_intent",
                "amount": payment.amount,
                "currency": "usd",
                "status": "requires_payment_method",
                "metadata": {"payment_id": payment_id},
                "latest_charge": None,
                "last_payment_error": None,
            }
        )
    )

    report = await run()
    again = await run()

    payment = await _fresh(session, Payment, payment.id)
    if outcome == "complete":
        assert payment.status is PaymentStatus.succeeded
        assert payment.checkout_payment_intent_id == intent_id
        assert report.objects["checkout_sessions"].changed == [
            f"{payment.id}: requires_payment -> succeeded"
        ]
        assert again.objects["checkout_sessions"].checked == 0
    else:
        # Expired: the Payment Element's PaymentIntent may still be paid, so only the expiry job
        # (which cancels it at Stripe first) ends the payment — as the webhook handler decides.
        assert payment.status is PaymentStatus.requires_payment
        assert report.objects["checkout_sessions"].changed == []
        assert again.objects["checkout_sessions"].checked == 1


# --- disputes ----------------------------------------------------------------------------------


async def test_an_open_dispute_closes_and_an_unknown_one_is_found(
    client: httpx.AsyncClient,
    session: AsyncSession,
    stripe_api: respx.MockRouter,
    lists: dict[str, Any],
    run: Run,
) -> None:
    from tests.fixtures.money import deliver
    from tests.fixtures.stripe import event

    known = await make_paid(session, charge_type=ChargeType.destination, amounts=(2500,))
    unknown = await make_paid(session, charge_type=ChargeType.direct, amounts=(1800,))
    mock_active_accounts(stripe_api)
    opened = dispute_json(known)
    await deliver(client, event("charge.dispute.created", opened))
    lost = {
        **opened,
        "status": "lost",
        "balance_transactions": [{"id": stripe_id("txn"), "amount": -2500, "fee": 1500}],
    }
    stripe_api.get(f"/v1/disputes/{opened['id']}").mock(return_value=ok(lost))
    # A dispute on a direct charge: listed on the vendor's connected account only.
    direct_dispute = {**dispute_json(unknown), "_account": unknown.vendor.stripe_account_id}
    lists["disputes"].append(direct_dispute)

    await run()
    await run()

    closed = (
        await session.execute(select(Dispute).where(Dispute.stripe_dispute_id == opened["id"]))
    ).scalar_one()
    assert (closed.status, closed.is_open) == ("lost", False)
    assert (await _fresh(session, Order, known.order.id)).status is OrderStatus.refunded
    assert await _ledger(session, MovementKind.dispute_withdrawal, payment_id=known.payment.id) == [
        -2500
    ]
    found = (
        await session.execute(
            select(Dispute).where(Dispute.stripe_dispute_id == direct_dispute["id"])
        )
    ).scalar_one()
    assert found.is_open
    assert found.stripe_account_id == unknown.vendor.stripe_account_id
    assert (await _fresh(session, Order, unknown.order.id)).status is OrderStatus.disputed


# --- payouts and vendors -----------------------------------------------------------------------


async def test_payouts_are_recorded_once_from_the_connected_accounts_list(
    session: AsyncSession,
    stripe_api: respx.MockRouter,
    lists: dict[str, Any],
    run: Run,
) -> None:
    vendor = await make_vendor(session)
    mock_active_accounts(stripe_api)
    payout = {
        "id": stripe_id("po"),
        "object": "payout",
        "amount": 7000,
        "currency": "usd",
        "status": "paid",
        "arrival_date": 1793000000,
        "method": "standard",
        "_account": vendor.stripe_account_id,
    }
    pending = {**payout, "id": stripe_id("po"), "status": "in_transit"}
    lists["payouts"] += [payout, pending]

    await run()
    await run()

    assert await _ledger(session, MovementKind.payout, vendor_id=vendor.id) == [-7000]


async def test_every_vendor_is_visited_round_robin_active_ones_included(
    session: AsyncSession,
    stripe_api: respx.MockRouter,
    lists: dict[str, Any],
    run: Run,
) -> None:
    vendors = [await make_vendor(session) for _ in range(3)]
    visited: list[str] = []

    def account(request: httpx.Request) -> httpx.Response:
        account_id = request.url.path.rsplit("/", 1)[1]
        visited.append(account_id)
        # Stripe disabled charges on every account: a downgrade of an active vendor.
        return ok(vendor_factories.account(account_id, details_submitted=True))

    stripe_api.get(url__regex=r"/v1/accounts/acct_\w+$").mock(side_effect=account)
    others = (await session.execute(select(func.count(Vendor.id)))).scalar_one() - 3

    for _ in range(3 + others):
        report = await run(batch_size=1)
        assert report.vendors.checked == 1  # the bound

    ours = {str(v.stripe_account_id) for v in vendors}
    assert ours <= set(visited)
    assert len(visited) == len(set(visited))  # oldest-checked first: nobody twice before all
    for vendor in vendors:
        assert (await _fresh(session, Vendor, vendor.id)).status is VendorStatus.restricted


async def test_each_kind_takes_at_most_batch_size_rows_per_run(
    session: AsyncSession,
    gateway: StripeGateway,
    app_state: AppState,
    stripe_api: respx.MockRouter,
    lists: dict[str, Any],
    run: Run,
) -> None:
    paid = [await make_paid(session, charge_type=ChargeType.destination) for _ in range(3)]
    mock_active_accounts(stripe_api)
    stripe_api.post("/v1/refunds").mock(return_value=stripe_error(500, type_="api_error"))
    pending = [await _refund(session, gateway, app_state, p.order, 100) for p in paid]
    listing = stripe_api.get("/v1/refunds").mock(
        side_effect=lambda request: stripe_list("/v1/refunds", [])
    )

    seen: list[str] = []
    for _ in range(3):
        report = await run(batch_size=1)
        assert report.objects["refunds"].checked == 1
        seen.append(listing.calls.last.request.url.params["payment_intent"])
    # Nothing at Stripe (the retry job will create them): still pending, each checked once.
    assert sorted(seen) == sorted(str(p.payment.stripe_payment_intent_id) for p in paid)
    for refund in pending:
        assert (await _fresh(session, Refund, refund.id)).status is RefundStatus.pending


async def test_a_paid_payment_missing_its_charge_gets_it_from_the_payment_intent(
    session: AsyncSession,
    stripe_api: respx.MockRouter,
    lists: dict[str, Any],
    run: Run,
) -> None:
    """Paid through `checkout.session.completed` while `payment_intent.succeeded` (which carries
    the charge) was lost: without the charge id the order could never be released."""
    paid = await make_paid(session, charge_type=ChargeType.separate)
    mock_active_accounts(stripe_api)
    await session.execute(
        update(Payment).where(Payment.id == paid.payment.id).values(stripe_charge_id=None)
    )
    await session.commit()
    charge = stripe_id("ch")
    intent = stripe_api.get(f"/v1/payment_intents/{paid.payment.stripe_payment_intent_id}").mock(
        return_value=ok(
            {
                "id": paid.payment.stripe_payment_intent_id,
                "object": "payment_intent",
                "amount": paid.payment.amount,
                "currency": "usd",
                "status": "succeeded",
                "metadata": {"payment_id": str(paid.payment.id)},
                "latest_charge": {"id": charge, "object": "charge"},
                "last_payment_error": None,
            }
        )
    )

    await run()
    await run()

    assert (await _fresh(session, Payment, paid.payment.id)).stripe_charge_id == charge
    assert intent.call_count == 1  # once recorded, not asked again
