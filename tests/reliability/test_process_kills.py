"""Kill -9 the API at each step of each idempotent route, retry with the same Idempotency-Key.

Each scenario forks a real API process (uvicorn, see `processes.Zygote`) against the test
database and a stateful Stripe stand-in over HTTP (`stripe_standin`: same idempotency key → same
object), sends one request and kills the process with SIGKILL at one point:

* `resource_committed` — the transaction that bound the created row to the key has committed;
* `stripe_request` — the row is committed, the Stripe request arrives (the stand-in kills the API
  before acting: Stripe did nothing);
* `stripe_response` — Stripe acted and answered, the API recorded nothing (killed right after the
  stand-in answered);
* `answer_stored` — the final answer is stored, not yet sent.

The client then retries with the same key on a live API. Every scenario checks: the retry answers
what the first attempt would have (status and body), a second retry replays it, the database holds
one resource per thing asked for, and Stripe made each object once (every retry reused the
idempotency key of the first attempt's row).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from marketplace_api.accounts.models import Role, User
from marketplace_api.accounts.security import create_access_token
from marketplace_api.catalog.models import Listing
from marketplace_api.config import ChargeType, Settings
from marketplace_api.crashpoints import ENV_VAR as CRASH_AT
from marketplace_api.main import create_app
from marketplace_api.orders.models import FulfilmentStatus, Order
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.refunds.models import Refund, RefundRequest, RefundStatus
from marketplace_api.transfers.models import Transfer, TransferStatus
from tests.conftest import build_state, make_settings
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.database import truncate_all
from tests.fixtures.money import NOW, make_buyer, make_paid
from tests.reliability.processes import Zygote, settings_env
from tests.reliability.stripe_standin import KillRule, StripeStandIn

HOOK_POINTS = ("resource_committed", "answer_stored")
RETRY_DEADLINE = 15.0  # seconds a retry may be told 409 while PostgreSQL ends the dead backend


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    server = Zygote()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def standin() -> Iterator[StripeStandIn]:
    server = StripeStandIn()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def kill_engine(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """Real commits on separate connections. Every scenario makes its own buyer, vendor and
    payment and checks only its own rows, so the tables are emptied once, not per scenario."""
    separate = create_async_engine(
        engine.url, poolclass=NullPool, connect_args={"server_settings": {"timezone": "UTC"}}
    )
    await truncate_all(engine)
    try:
        yield separate
    finally:
        await separate.dispose()
        await truncate_all(engine)


@dataclass
class World:
    settings: Settings
    session: AsyncSession
    live: httpx.AsyncClient  # a live API (in this process) for setup and the retries

    def auth(self, user_id: uuid.UUID, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {create_access_token(self.settings, user_id, role)}"}

    async def all(self, model: Any, *where: Any) -> list[Any]:
        query = select(model).where(*where).execution_options(populate_existing=True)
        return list((await self.session.execute(query)).scalars().all())

    async def one(self, model: Any, *where: Any) -> Any:
        rows = await self.all(model, *where)
        assert len(rows) == 1, rows
        return rows[0]


@pytest.fixture
async def world(
    database_url: str, kill_engine: AsyncEngine, standin: StripeStandIn
) -> AsyncIterator[World]:
    standin.reset()
    settings = make_settings(database_url, stripe_api_base=standin.url, rate_limit_enabled=False)
    app = create_app(state=build_state(settings, kill_engine))
    async with (
        AsyncSession(kill_engine, expire_on_commit=False) as session,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as live,
    ):
        yield World(settings, session, live)


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    status: int
    stripe_path: str | None  # the Stripe POST a kill at a Stripe point waits for
    created: dict[str, int]  # what Stripe must have made once the retry is done
    check: Callable[[dict[str, Any]], Awaitable[None]]
    body: dict[str, Any] | None = None
    kill_skip: int = 0  # Stripe requests let through before the killing one
    points: tuple[str, ...] = field(default=())


# --- the routes ------------------------------------------------------------------------------


async def checkout(w: World) -> Call:
    vendor = await make_vendor(w.session)
    listing = await make_listing(w.session, vendor, price=2500, stock=3)
    buyer = await make_buyer(w.session)

    async def check(answer: dict[str, Any]) -> None:
        payment = await w.one(Payment, Payment.buyer_id == buyer.id)
        assert answer["payment_id"] == str(payment.id)
        assert answer["client_secret"].startswith(f"{payment.stripe_payment_intent_id}_secret")
        stock = await w.session.scalar(
            select(Listing.stock_quantity).where(Listing.id == listing.id)
        )
        assert stock == 2  # reserved once

    return Call(
        path="/v1/buyer/orders",
        body={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=w.auth(buyer.id, Role.buyer),
        status=201,
        stripe_path=r"/v1/payment_intents",
        created={"payment_intent": 1},
        check=check,
    )


async def vendor_refund(w: World) -> Call:
    paid = await make_paid(w.session, charge_type=ChargeType.destination, amounts=(2000,))

    async def check(answer: dict[str, Any]) -> None:
        refund = await w.one(Refund, Refund.order_id == paid.order.id)
        assert (refund.amount, refund.status) == (250, RefundStatus.succeeded)
        assert answer["id"] == str(refund.id)
        assert (answer["amount"], answer["status"]) == (250, "succeeded")
        order = await w.one(Order, Order.id == paid.order.id)
        assert order.amount_refunded == 250  # not 500

    return Call(
        path=f"/v1/vendor/orders/{paid.order.id}/refunds",
        body={"amount": 250},
        headers=w.auth(paid.vendor.user_id, Role.vendor),
        status=201,
        stripe_path=r"/v1/refunds",
        created={"refund": 1},
        check=check,
    )


async def admin_refund(w: World) -> Call:
    """Every order of a two-vendor payment in full: two refunds, both bound to the key."""
    paid = await make_paid(w.session, charge_type=ChargeType.separate, amounts=(1000, 1500))
    admin = User(email=f"admin-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
    admin.role = Role.admin
    w.session.add(admin)
    await w.session.commit()

    async def check(answer: dict[str, Any]) -> None:
        refunds = await w.all(Refund, Refund.payment_id == paid.payment.id)
        assert sorted(r.amount for r in refunds) == [1000, 1500]
        assert {r.status for r in refunds} == {RefundStatus.succeeded}
        assert {r["id"] for r in answer["refunds"]} == {str(r.id) for r in refunds}
        payment = await w.one(Payment, Payment.id == paid.payment.id)
        assert payment.amount_refunded == 2500

    return Call(
        path=f"/v1/admin/payments/{paid.payment.id}/refunds",
        body={},
        headers=w.auth(admin.id, Role.admin),
        status=201,
        stripe_path=r"/v1/refunds",
        kill_skip=1,  # the second order's refund
        created={"refund": 2},
        check=check,
    )


async def refund_request(w: World) -> Call:
    buyer = await make_buyer(w.session)
    paid = await make_paid(w.session, buyer_id=buyer.id)

    async def check(answer: dict[str, Any]) -> None:
        request = await w.one(RefundRequest, RefundRequest.order_id == paid.order.id)
        assert answer["id"] == str(request.id)
        assert answer["status"] == "open"

    return Call(
        path=f"/v1/buyer/orders/{paid.order.id}/refund-requests",
        body={"reason": "arrived broken", "amount": 500},
        headers=w.auth(buyer.id, Role.buyer),
        status=201,
        stripe_path=None,
        created={},
        check=check,
    )


async def _check_one_transfer(w: World, order_id: uuid.UUID, answer: dict[str, Any]) -> None:
    transfer = await w.one(Transfer, Transfer.order_id == order_id)
    assert transfer.status is TransferStatus.paid
    assert transfer.stripe_transfer_id is not None
    assert answer["id"] == str(transfer.id)
    assert (answer["status"], answer["amount"]) == ("paid", transfer.amount)


async def admin_release(w: World) -> Call:
    paid = await make_paid(w.session, charge_type=ChargeType.separate)
    admin = User(email=f"admin-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
    admin.role = Role.admin
    w.session.add(admin)
    await w.session.commit()

    async def check(answer: dict[str, Any]) -> None:
        await _check_one_transfer(w, paid.order.id, answer)

    return Call(
        path=f"/v1/admin/orders/{paid.order.id}/release",
        headers=w.auth(admin.id, Role.admin),
        status=200,
        stripe_path=r"/v1/transfers",
        created={"transfer": 1},
        check=check,
    )


async def confirm_delivery(w: World) -> Call:
    buyer = await make_buyer(w.session)
    paid = await make_paid(
        w.session, charge_type=ChargeType.separate, buyer_id=buyer.id, shipped_at=NOW
    )

    async def check(answer: dict[str, Any]) -> None:
        await _check_one_transfer(w, paid.order.id, answer["transfer"])
        order = await w.one(Order, Order.id == paid.order.id)
        assert order.fulfilment_status is FulfilmentStatus.delivered
        assert answer["fulfilment_status"] == "delivered"

    return Call(
        path=f"/v1/buyer/orders/{paid.order.id}/confirm-delivery",
        headers=w.auth(buyer.id, Role.buyer),
        status=200,
        stripe_path=r"/v1/transfers",
        created={"transfer": 1},
        check=check,
    )


async def _unpaid_order(w: World) -> tuple[User, Listing, dict[str, Any]]:
    vendor = await make_vendor(w.session)
    listing = await make_listing(w.session, vendor, stock=3)
    buyer = await make_buyer(w.session)
    placed = await w.live.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=w.auth(buyer.id, Role.buyer),
    )
    assert placed.status_code == 201, placed.text
    return buyer, listing, placed.json()


async def cancel(w: World) -> Call:
    buyer, listing, placed = await _unpaid_order(w)

    async def check(answer: dict[str, Any]) -> None:
        payment = await w.one(Payment, Payment.buyer_id == buyer.id)
        assert payment.status is PaymentStatus.canceled
        assert answer["status"] == "cancelled"
        stock = await w.session.scalar(
            select(Listing.stock_quantity).where(Listing.id == listing.id)
        )
        assert stock == 3  # released once

    return Call(
        path=f"/v1/buyer/orders/{placed['orders'][0]['id']}/cancel",
        headers=w.auth(buyer.id, Role.buyer),
        status=200,
        stripe_path=r"/v1/payment_intents/[^/]+/cancel",
        created={"payment_intent": 1, "payment_intent_cancel": 1},
        check=check,
    )


async def checkout_session(w: World) -> Call:
    buyer, _, placed = await _unpaid_order(w)

    async def check(answer: dict[str, Any]) -> None:
        payment = await w.one(Payment, Payment.buyer_id == buyer.id)
        assert payment.checkout_session_id == answer["session_id"]
        assert payment.checkout_session_seq == 1  # one attempt, resumed

    return Call(
        path=f"/v1/buyer/orders/{placed['orders'][0]['id']}/checkout-session",
        headers=w.auth(buyer.id, Role.buyer),
        status=200,
        stripe_path=r"/v1/checkout/sessions",
        created={"payment_intent": 1, "checkout_session": 1},
        check=check,
    )


ALL = ("resource_committed", "stripe_request", "stripe_response", "answer_stored")
SCENARIOS: list[tuple[Callable[[World], Awaitable[Call]], tuple[str, ...]]] = [
    (checkout, ALL),
    (vendor_refund, ALL),
    (admin_refund, ALL),
    (refund_request, ("resource_committed", "answer_stored")),
    (admin_release, ALL),
    (confirm_delivery, ALL),
    # Cancelling creates nothing to bind: it is idempotent by itself.
    (cancel, ("stripe_request", "stripe_response", "answer_stored")),
    (checkout_session, ALL),
]


async def _retry(w: World, call: Call) -> httpx.Response:
    """The client's retry: 409 `idempotency_key_in_use` only until PostgreSQL has ended the dead
    process's connection (and the key's lock with it)."""
    deadline = time.monotonic() + RETRY_DEADLINE
    while True:
        response = await w.live.post(call.path, json=call.body, headers=call.headers)
        if response.status_code != 409 or time.monotonic() > deadline:
            return response
        assert response.json()["code"] == "idempotency_key_in_use"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("route", "point"),
    [
        pytest.param(route, point, id=f"{route.__name__}-{point}")
        for route, points in SCENARIOS
        for point in points
    ],
)
async def test_a_request_killed_at_any_step_is_resumed_by_its_retry_and_money_moves_once(
    route: Callable[[World], Awaitable[Call]],
    point: str,
    world: World,
    zygote: Zygote,
    standin: StripeStandIn,
) -> None:
    call = await route(world)
    call.headers["Idempotency-Key"] = f"kill-{uuid.uuid4()}"
    env = settings_env(world.settings, **({CRASH_AT: point} if point in HOOK_POINTS else {}))
    api = zygote.spawn(env)
    try:
        if point.startswith("stripe_"):
            assert call.stripe_path is not None
            standin.kill = KillRule(
                call.stripe_path, point.removeprefix("stripe_"), api.pid, skip=call.kill_skip
            )
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            with pytest.raises(httpx.TransportError):  # the process died mid-request
                await http.post(call.path, json=call.body, headers=call.headers)
        api.wait_dead()
    finally:
        api.stop()
    assert standin.kill is None  # the kill rule fired

    retried = await _retry(world, call)

    assert retried.status_code == call.status, retried.text
    await call.check(retried.json())
    assert dict(standin.created) == call.created
    replay = await world.live.post(call.path, json=call.body, headers=call.headers)
    assert replay.status_code == call.status
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == retried.json()
    assert dict(standin.created) == call.created
