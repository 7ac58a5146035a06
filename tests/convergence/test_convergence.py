"""Model-based convergence: whatever happens to Stripe's answers and events, once `reconcile`
and the jobs have run, every row equals Stripe's state (the simulator's), each payment's ledger
balances, and no money moved twice.

Hypothesis generates a history against the Stripe simulator (the suite's one stateful Stripe):
checkouts of each charge type (one vendor, or a cart of several: separate charges), paid by the
Payment Element or a Checkout Session, succeeding or declined; refunds (full or partial);
releases; disputes opened and won or lost; vendors' accounts changing. Each event Stripe emits is
delivered, lost, duplicated, or held back and delivered later in another order — after our own
commits. A refund or a release may crash between Stripe's answer and our commit (the reliability
suite's technique). Then the retry jobs, the stored-event job and `reconcile` run, and the
database is compared with the simulator.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import respx
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from marketplace_api.config import ChargeType, Settings
from marketplace_api.deps import get_session
from marketplace_api.disputes.models import Dispute
from marketplace_api.errors import ProblemError
from marketplace_api.ledger import service as ledger
from marketplace_api.main import create_app
from marketplace_api.orders.models import Order
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.reconcile.service import reconcile
from marketplace_api.refunds import service as refunds
from marketplace_api.refunds.models import Refund, RefundOrigin, RefundStatus
from marketplace_api.refunds.schemas import RefundCreate
from marketplace_api.release.jobs import retry_pending_transfers
from marketplace_api.release.service import release_order
from marketplace_api.stripe_simulator import StripeSimulator
from marketplace_api.stripe_simulator.events import Delivery
from marketplace_api.transfers.models import (
    ReleaseTrigger,
    ReversalStatus,
    Transfer,
    TransferReversal,
    TransferStatus,
)
from marketplace_api.vendors.models import Vendor
from marketplace_api.webhooks.pipeline import process_due_events
from tests.conftest import AuthUser, build_state
from tests.fixtures.catalog import make_listing, make_vendor
from tests.reliability.faults import SimulatedCrash, crash_on_commit

WEBHOOK_URL = "https://api.shop.example/webhooks/stripe"
PI_STATUS = {
    "requires_payment_method": PaymentStatus.requires_payment,
    "requires_confirmation": PaymentStatus.requires_payment,
    "requires_action": PaymentStatus.requires_action,
    "processing": PaymentStatus.processing,
    "succeeded": PaymentStatus.succeeded,
    "canceled": PaymentStatus.canceled,
}
FATES = ("deliver", "deliver", "lose", "duplicate", "delay")
MAX_STEPS = 8  # per history; with 6 examples the test takes about half a minute

# --- the generated steps -------------------------------------------------------------------------

checkout = st.tuples(
    st.just("checkout"),
    st.sampled_from(["destination", "direct", "separate", "cart"]),
    st.sampled_from(["element", "session"]),
    st.sampled_from(["pm_card_visa", "pm_card_visa", "pm_card_chargeDeclined", None]),
)
refund = st.tuples(
    st.just("refund"), st.integers(0, 9), st.sampled_from([None, 1, 300]), st.booleans()
)
release = st.tuples(st.just("release"), st.integers(0, 9), st.booleans())
dispute = st.tuples(st.just("dispute"), st.integers(0, 9))
close = st.tuples(st.just("close"), st.integers(0, 9), st.booleans())
account = st.tuples(st.just("account"), st.integers(0, 2), st.booleans())
STEP = st.one_of(checkout, checkout, refund, release, dispute, close, account)


@dataclass
class World:
    sim: StripeSimulator
    http: httpx.AsyncClient
    session: AsyncSession
    sessions: async_sessionmaker[AsyncSession]
    state_settings: Settings
    buyer: AuthUser
    vendor_ids: list[uuid.UUID]  # plain values: the rows expire on every rollback
    accounts: list[str]  # their connected accounts
    listings: dict[str, uuid.UUID]
    paid_orders: list[uuid.UUID] = field(default_factory=list)
    charges: list[str] = field(default_factory=list)
    disputes: list[str] = field(default_factory=list)
    held: list[Delivery] = field(default_factory=list)
    crash_next: bool = False


# --- fixtures ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _simulated_stripe(sim: StripeSimulator, world_ref: dict[str, Any]) -> Iterator[None]:
    """Every request to api.stripe.com answered by the simulator. When the world asks for a crash,
    a money-moving POST's answer arms the crash of our next COMMIT."""

    def answer(request: httpx.Request) -> httpx.Response:
        response = sim.handle(request)
        world: World | None = world_ref.get("world")
        if (
            world is not None
            and world.crash_next
            and request.method == "POST"
            and request.url.path in ("/v1/refunds", "/v1/transfers")
        ):
            world.crash_next = False
            world_ref["crash"].arm()
        return response

    with respx.mock(assert_all_called=False) as router:
        router.route(host="api.stripe.com").mock(side_effect=answer)
        yield


@contextlib.asynccontextmanager
async def _app(
    state_settings: Settings, engine: AsyncEngine, session: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(state=build_state(state_settings, engine))

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http


# --- the test ------------------------------------------------------------------------------------


@hypothesis_settings(
    max_examples=int(os.environ.get("CONVERGENCE_EXAMPLES", "6")),
    derandomize=True,
    deadline=None,
    # No shrinking: a failure prints its whole history (steps and each event's fate), and a
    # CI run stays bounded.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_every_row_converges_to_stripe_whatever_happens_to_answers_and_events(
    data: st.DataObject,
    connection: AsyncConnection,
    engine: AsyncEngine,
    settings: Settings,
    buyer: AuthUser,
) -> None:
    steps = data.draw(st.lists(STEP, min_size=3, max_size=MAX_STEPS), label="history")
    example = await connection.begin_nested()
    try:
        await _run(data, steps, connection, engine, settings, buyer)
    finally:
        await example.rollback()


async def _run(
    data: st.DataObject,
    steps: list[tuple[Any, ...]],
    connection: AsyncConnection,
    engine: AsyncEngine,
    base_settings: Settings,
    buyer: AuthUser,
) -> None:
    sim = StripeSimulator(seed=len(steps), public_url="http://testserver")
    secrets = [
        sim.add_webhook_endpoint(WEBHOOK_URL, connect=False),
        sim.add_webhook_endpoint(WEBHOOK_URL, connect=True),
    ]
    state_settings = base_settings.model_copy(
        update={"stripe_webhook_secrets": [SecretStr(secret) for secret in secrets]}
    )
    sessions = async_sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )
    ref: dict[str, Any] = {}
    async with sessions() as session:
        with (
            _simulated_stripe(sim, ref),
            crash_on_commit(session) as crash,
        ):
            ref["crash"] = crash
            async with _app(state_settings, engine, session) as http:
                world = await _world(sim, http, session, sessions, state_settings, buyer)
                ref["world"] = world
                for step in steps:
                    await _step(world, step)
                    await _deliver(world, data)
                # Whatever was held back arrives now, after all our commits, in any order.
                late = data.draw(st.permutations(world.held), label="late deliveries")
                world.held = []
                for delivery in late:
                    await _post(world, delivery)
                await _drain(world)
                await _assert_converged(world)


async def _world(
    sim: StripeSimulator,
    http: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    state_settings: Settings,
    buyer: AuthUser,
) -> World:
    """Three onboarded vendors (one per charge type) with a listing each."""
    gateway = build_state(state_settings, session.bind.engine).stripe  # type: ignore[union-attr]
    assert gateway is not None
    vendors: dict[str, Vendor] = {}
    listings: dict[str, uuid.UUID] = {}
    for charge_type in ChargeType:
        vendor = await make_vendor(session, charge_type=charge_type)
        created = await gateway.create_express_account(
            country="US",
            email=f"{charge_type.value}@example.com",
            business_name=charge_type.value,
            product_description="Things",
            metadata={"vendor_id": str(vendor.id)},
            idempotency_key=f"vendor:{vendor.id}:account",
        )
        sim.complete_onboarding(created.id)
        vendor.stripe_account_id = created.id
        await session.commit()
        vendors[charge_type.value] = vendor
        listings[charge_type.value] = (await make_listing(session, vendor, price=2500, stock=50)).id
    sim.take_deliveries()  # onboarding's own events are not part of the history
    ids = [v.id for v in vendors.values()]
    accounts = [str(v.stripe_account_id) for v in vendors.values()]
    return World(sim, http, session, sessions, state_settings, buyer, ids, accounts, listings)


def _gateway(world: World) -> Any:
    return build_state(world.state_settings, world.session.bind.engine).stripe  # type: ignore[union-attr]


async def _step(world: World, step: tuple[Any, ...]) -> None:
    kind = step[0]
    try:
        if kind == "checkout":
            await _checkout(world, *step[1:])
        elif kind == "refund":
            await _refund(world, *step[1:])
        elif kind == "release":
            await _release(world, *step[1:])
        elif kind == "dispute" and world.charges:
            charge = world.charges[step[1] % len(world.charges)]
            if not any(d["charge"] == charge for d in world.sim.state.disputes.values()):
                world.disputes.append(world.sim.open_dispute(charge)["id"])
        elif kind == "close" and world.disputes:
            dispute_id = world.disputes[step[1] % len(world.disputes)]
            if world.sim.state.disputes[dispute_id]["status"] not in ("won", "lost"):
                world.sim.close_dispute(dispute_id, won=step[2])
        elif kind == "account":
            world.sim.update_account(
                world.accounts[step[1]], charges_enabled=step[2], payouts_enabled=step[2]
            )
    except ProblemError:
        await world.session.rollback()  # refused by our rules (e.g. nothing left to refund)
    except SimulatedCrash:
        await world.session.rollback()  # the process died after Stripe answered


async def _checkout(world: World, which: str, how: str, card: str | None) -> None:
    names = ["destination", "separate"] if which == "cart" else [which]
    response = await world.http.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(world.listings[n]), "quantity": 1} for n in names]},
        headers=world.buyer.headers,
    )
    if response.status_code != 201:
        return  # e.g. a vendor whose account cannot take charges now
    body = response.json()
    payment = await world.session.get(
        Payment, uuid.UUID(body["payment_id"]), populate_existing=True
    )
    assert payment is not None
    if how == "session":
        response = await world.http.post(
            f"/v1/buyer/orders/{body['orders'][0]['id']}/checkout-session",
            headers=world.buyer.headers,
        )
        if response.status_code != 200:
            return
        await world.session.refresh(payment)
        if card is not None:
            with contextlib.suppress(Exception):
                world.sim.pay_checkout_session(str(payment.checkout_session_id), card)
    elif card is not None:
        world.sim.confirm_payment_intent(str(payment.stripe_payment_intent_id), card)
    for intent in _intents_of(world, payment.id):
        if intent["status"] == "succeeded":
            world.charges.append(str(intent["latest_charge"]))
            world.paid_orders += [uuid.UUID(o["id"]) for o in body["orders"]]


async def _refund(world: World, index: int, amount: int | None, crash: bool) -> None:
    if not world.paid_orders:
        return
    order_id = world.paid_orders[index % len(world.paid_orders)]
    world.crash_next = crash
    try:
        await refunds.create_refund(
            world.session,
            _gateway(world),
            world.state_settings,
            order_id,
            RefundCreate(amount=amount),
            origin=RefundOrigin.admin,
            actor_id=None,
            now=datetime.now(UTC),
        )
    finally:
        world.crash_next = False


async def _release(world: World, index: int, crash: bool) -> None:
    if not world.paid_orders:
        return
    order_id = world.paid_orders[index % len(world.paid_orders)]
    world.crash_next = crash
    try:
        await release_order(
            world.session,
            _gateway(world),
            order_id,
            trigger=ReleaseTrigger.admin,
            now=datetime.now(UTC),
        )
    finally:
        world.crash_next = False


# --- events: delivered, lost, duplicated, held back and reordered ---------------------------------


async def _deliver(world: World, data: st.DataObject) -> None:
    for delivery in world.sim.take_deliveries():
        fate = data.draw(st.sampled_from(FATES), label=f"fate of {delivery.type}")
        if fate == "deliver":
            await _post(world, delivery)
        elif fate == "duplicate":
            await _post(world, delivery)
            await _post(world, delivery)
        elif fate == "delay":
            world.held.append(delivery)
    if world.held and data.draw(st.booleans(), label="flush some held events"):
        order = data.draw(st.permutations(world.held), label="held order")
        count = data.draw(st.integers(0, len(order)), label="how many")
        for delivery in order[:count]:
            await _post(world, delivery)
        world.held = order[count:]


async def _post(world: World, delivery: Delivery) -> None:
    response = await world.http.post(
        "/webhooks/stripe", content=delivery.payload, headers=delivery.headers()
    )
    assert response.status_code == 200, response.text


# --- after the history: jobs and reconcile, then the comparison ----------------------------------


async def _drain(world: World) -> None:
    """The job queue's periodic work and `reconcile`, until nothing changes any more."""
    gateway = _gateway(world)
    later = datetime.now(UTC) + timedelta(hours=2)
    for _ in range(3):
        await process_due_events(world.sessions, now=later)
        await refunds.retry_failed_refunds(
            world.sessions, gateway, now=later, settings=world.state_settings
        )
        await retry_pending_transfers(
            world.sessions, gateway, now=later, settings=world.state_settings
        )
        await reconcile(world.sessions, gateway, now=later, pending_payment_age=timedelta(0))
        # What those calls made Stripe emit is delivered too (duplicates are harmless).
        for delivery in world.sim.take_deliveries():
            await _post(world, delivery)


def _intents_of(world: World, payment_id: uuid.UUID) -> list[dict[str, Any]]:
    return [
        pi
        for pi in world.sim.state.payment_intents.values()
        if (pi.get("metadata") or {}).get("payment_id") == str(payment_id)
    ]


def _by_metadata(objects: dict[str, dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for obj in objects.values():
        ours = (obj.get("metadata") or {}).get(key)
        if ours:
            found.setdefault(str(ours), []).append(obj)
    return found


async def _assert_converged(world: World) -> None:
    session, state = world.session, world.sim.state
    await session.commit()
    vendor_ids = world.vendor_ids
    payments = (
        (
            await session.execute(
                select(Payment)
                .join(Order, Order.payment_id == Payment.id)
                .where(Order.vendor_id.in_(vendor_ids))
                .distinct()
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )
    # No money moved twice: one Stripe object per row of ours (per idempotency key).
    stripe_refunds = _by_metadata(state.refunds, "refund_id")
    stripe_transfers = _by_metadata(state.transfers, "transfer_id")
    stripe_reversals = _by_metadata(state.transfer_reversals, "reversal_id")
    for made in (stripe_refunds, stripe_transfers, stripe_reversals):
        assert all(len(objs) == 1 for objs in made.values()), made
    for payment in payments:
        intents = _intents_of(world, payment.id)
        assert Counter(pi["status"] for pi in intents)["succeeded"] <= 1
        paid = [pi for pi in intents if pi["status"] == "succeeded"]
        if paid:
            assert payment.status is PaymentStatus.succeeded, payment.id
            assert payment.stripe_charge_id == paid[0]["latest_charge"]
            charge = state.charges[paid[0]["latest_charge"]]
            assert payment.amount_refunded == charge["amount_refunded"], payment.id
        else:
            current = next(
                (pi for pi in intents if pi["id"] == payment.stripe_payment_intent_id), None
            )
            if current is not None:
                assert payment.status is PI_STATUS[current["status"]], payment.id
        await _assert_ledger_balances(session, payment)
    # Refunds, transfers and reversals: each row says what Stripe says; nothing left in flight.
    ours = (
        (await session.execute(select(Refund).where(Refund.vendor_id.in_(vendor_ids))))
        .scalars()
        .all()
    )
    for refund in ours:
        made = stripe_refunds.get(str(refund.id))
        if made is None:
            assert refund.status is RefundStatus.failed, refund.id
        else:
            assert refund.status.value == made[0]["status"], refund.id
            assert refund.stripe_refund_id == made[0]["id"]
    for transfer in (
        (await session.execute(select(Transfer).where(Transfer.vendor_id.in_(vendor_ids))))
        .scalars()
        .all()
    ):
        made = stripe_transfers.get(str(transfer.id))
        if transfer.status is TransferStatus.skipped:
            assert made is None
            continue
        assert made is not None, transfer.id
        assert transfer.status is TransferStatus.paid
        assert (transfer.stripe_transfer_id, transfer.amount) == (made[0]["id"], made[0]["amount"])
        assert transfer.amount_reversed == made[0]["amount_reversed"], transfer.id
    reversals = (
        await session.execute(
            select(TransferReversal)
            .join(Transfer, Transfer.id == TransferReversal.transfer_id)
            .where(Transfer.vendor_id.in_(vendor_ids))
        )
    ).scalars()
    for reversal in reversals:
        made = stripe_reversals.get(str(reversal.id))
        if reversal.status is ReversalStatus.canceled:
            assert made is None
            continue
        assert made is not None, reversal.id
        assert reversal.status is ReversalStatus.succeeded
        assert reversal.stripe_reversal_id == made[0]["id"]
    # Disputes: every one Stripe has on our charges, with its status.
    for stripe_dispute in state.disputes.values():
        row = (
            await session.execute(
                select(Dispute).where(Dispute.stripe_dispute_id == stripe_dispute["id"])
            )
        ).scalar_one_or_none()
        assert row is not None, stripe_dispute["id"]
        assert row.status == stripe_dispute["status"]
        assert row.is_open is (stripe_dispute["status"] not in ("won", "lost"))
    # Vendors: what their connected accounts say now.
    for vendor_id in vendor_ids:
        vendor = await session.get(Vendor, vendor_id, populate_existing=True)
        assert vendor is not None
        account = state.accounts[str(vendor.stripe_account_id)]
        assert vendor.charges_enabled is account["charges_enabled"], vendor.id
        assert vendor.payouts_enabled is account["payouts_enabled"], vendor.id


async def _assert_ledger_balances(session: AsyncSession, payment: Payment) -> None:
    """charge + refunds == transfers + platform fee + held, with held computed from the orders
    (not the ledger's residual) when no dispute took money back."""
    balance = await ledger.payment_balance(session, payment)
    if payment.status is not PaymentStatus.succeeded:
        assert balance.charge == 0
        return
    assert balance.charge == payment.amount
    assert -balance.refunds == payment.amount_refunded
    assert balance.charge + balance.refunds == (
        balance.transfers + balance.platform_fee + balance.held
    )
    disputed = (
        await session.execute(
            select(func.count(Dispute.id)).where(Dispute.payment_id == payment.id)
        )
    ).scalar_one()
    if disputed:
        return
    assert balance.held == await _held(session, payment), payment.id


async def _held(session: AsyncSession, payment: Payment) -> int:
    if payment.charge_type is not ChargeType.separate:
        return 0
    held = 0
    for order in (
        await session.execute(select(Order).where(Order.payment_id == payment.id))
    ).scalars():
        transfer = (
            await session.execute(select(Transfer).where(Transfer.order_id == order.id))
        ).scalar_one_or_none()
        if transfer is not None and transfer.status in (
            TransferStatus.paid,
            TransferStatus.skipped,
        ):
            continue
        refunded_share = (
            await session.execute(
                select(func.coalesce(func.sum(Refund.vendor_share), 0)).where(
                    Refund.order_id == order.id, Refund.status == RefundStatus.succeeded
                )
            )
        ).scalar_one()
        held += order.vendor_amount - int(refunded_share)
    return held
