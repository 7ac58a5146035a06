"""GET /v1/{buyer,vendor}/orders/{id}/events: Server-Sent Events of committed status changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.accounts.models import Role
from marketplace_api.orders.models import FulfilmentStatus, Order, OrderStatus
from marketplace_api.orders.state import transition_orders
from tests.conftest import MakeUser
from tests.fixtures.orders import PlacedOrder, succeeded_event
from tests.fixtures.stripe import event_body, sign
from tests.live.conftest import HEARTBEAT, Serve, eventually, open_stream

CommittedOrder = Callable[..., Awaitable[PlacedOrder]]


async def deliver_webhook(base_url: str, evt: dict[str, object]) -> httpx.Response:
    body = event_body(evt)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        return await http.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": sign(body), "Content-Type": "application/json"},
        )


async def ship(engine: AsyncEngine, order_id: object) -> None:
    async with AsyncSession(engine) as session:
        await session.execute(
            text("UPDATE orders SET fulfilment_status = 'shipped' WHERE id = :id"),
            {"id": order_id},
        )
        await session.commit()


async def test_buyer_stream_receives_payment_success_within_a_second_from_another_process(
    serve: Serve, make_committed_user: MakeUser, committed_order: CommittedOrder
) -> None:
    buyer = await make_committed_user(Role.buyer)
    placed = await committed_order(buyer.user)
    watcher, receiver = await serve(), await serve()  # two API processes
    # A first payment warms the receiving process (lazy imports, statement caches), so what is
    # timed below is the way across processes, not a cold start.
    warm = await deliver_webhook(
        receiver.base_url, succeeded_event(await committed_order(buyer.user))
    )
    assert warm.json()["status"] == "processed"

    path = f"/v1/buyer/orders/{placed.order.id}/events"
    async with open_stream(watcher.base_url, path, buyer.headers) as (response, sse):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        first = await sse.next()
        assert first.retry == 3000
        current = await sse.next_event()
        assert current.event == "order.status"
        assert current.id == "0"  # no change yet
        assert current.data == {
            "order_id": str(placed.order.id),
            "status": "pending_payment",
            "fulfilment_status": "unfulfilled",
            "payment_status": "requires_payment",
            "payment_failure_code": None,
            "at": current.data["at"] if current.data else None,
        }
        await asyncio.wait_for(watcher.broadcaster.connected.wait(), 5)  # type: ignore[union-attr]

        started = time.monotonic()
        delivered = await deliver_webhook(receiver.base_url, succeeded_event(placed))
        assert delivered.status_code == 200, delivered.text
        assert delivered.json()["status"] == "processed"
        statuses = []
        while not statuses or statuses[-1]["status"] != "paid":
            frame = await sse.next_event(within=1.0)
            assert frame.data is not None
            statuses.append(frame.data)
        elapsed = time.monotonic() - started

    assert elapsed < 1.0
    # The payment moved first (its trigger saw the order still pending), then the order.
    assert [(s["status"], s["payment_status"]) for s in statuses] == [
        ("pending_payment", "succeeded"),
        ("paid", "succeeded"),
    ]


async def test_vendor_stream_of_own_order_and_another_users_order_is_404(
    serve: Serve, make_committed_user: MakeUser, committed_order: CommittedOrder
) -> None:
    buyer = await make_committed_user(Role.buyer)
    other_buyer = await make_committed_user(Role.buyer)
    vendor_owner = await make_committed_user(Role.vendor)
    other_vendor = await make_committed_user(Role.vendor)
    server = await serve()
    placed = await committed_order(buyer.user, vendor_user=vendor_owner.user)

    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        for who, path in (
            (other_buyer, f"/v1/buyer/orders/{placed.order.id}/events"),
            (other_vendor, f"/v1/vendor/orders/{placed.order.id}/events"),
        ):
            answer = await http.get(path, headers=who.headers)
            assert answer.status_code == 404
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == "order_not_found"
        # A buyer cannot use the vendor's stream, and no token is 401.
        wrong_role = await http.get(
            f"/v1/vendor/orders/{placed.order.id}/events", headers=buyer.headers
        )
        assert wrong_role.status_code == 403
        anonymous = await http.get(f"/v1/buyer/orders/{placed.order.id}/events")
        assert anonymous.status_code == 401

    path = f"/v1/vendor/orders/{placed.order.id}/events"
    async with open_stream(server.base_url, path, vendor_owner.headers) as (response, sse):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        current = await sse.next_event()
        assert current.data is not None
        assert current.data["order_id"] == str(placed.order.id)
    assert server.broadcaster is not None


async def test_reconnect_with_last_event_id_replays_what_was_missed(
    serve: Serve,
    make_committed_user: MakeUser,
    committed_order: CommittedOrder,
    committed_engine: AsyncEngine,
) -> None:
    buyer = await make_committed_user(Role.buyer)
    placed = await committed_order(buyer.user)
    server = await serve()
    path = f"/v1/buyer/orders/{placed.order.id}/events"

    assert (await deliver_webhook(server.base_url, succeeded_event(placed))).status_code == 200
    async with open_stream(server.base_url, path, buyer.headers) as (_, sse):
        seen = await sse.next_event()  # the current state: paid
    assert seen.data is not None
    assert seen.data["status"] == "paid"
    # While the client is away: shipped, then refunded.
    await ship(committed_engine, placed.order.id)
    async with AsyncSession(committed_engine) as session:
        moved = await transition_orders(
            session, OrderStatus.refunded, now=datetime.now(UTC), order_ids=[placed.order.id]
        )
        await session.commit()
    assert moved == [placed.order.id]

    headers = {**buyer.headers, "Last-Event-ID": str(seen.id)}
    async with open_stream(server.base_url, path, headers) as (_, sse):
        missed = [await sse.next_event(), await sse.next_event()]
        assert [(e.data or {}).get("fulfilment_status") for e in missed] == [
            "shipped",
            "shipped",
        ]
        assert [(e.data or {}).get("status") for e in missed] == ["paid", "refunded"]
        ids = [int(e.id or 0) for e in missed]
        assert int(seen.id or 0) < ids[0] < ids[1]
        # And the stream goes on live after the replay.
        await asyncio.wait_for(server.broadcaster.connected.wait(), 5)  # type: ignore[union-attr]
        async with AsyncSession(committed_engine) as session:
            await session.execute(
                text("UPDATE orders SET fulfilment_status = 'delivered' WHERE id = :id"),
                {"id": placed.order.id},
            )
            await session.commit()
        live = await sse.next_event(within=2)
        assert live.data is not None
        assert live.data["fulfilment_status"] == "delivered"
        assert int(live.id or 0) > ids[1]

    # Replaying from the very start gives the whole history, in order.
    headers = {**buyer.headers, "Last-Event-ID": "0"}
    async with open_stream(server.base_url, path, headers) as (_, sse):
        history = [await sse.next_event() for _ in range(5)]
    assert [(e.data or {})["status"] for e in history] == [
        "pending_payment",
        "paid",
        "paid",
        "refunded",
        "refunded",
    ]


async def test_heartbeats_one_listen_connection_per_process_and_cleanup_on_disconnect(
    serve: Serve,
    make_committed_user: MakeUser,
    committed_order: CommittedOrder,
    committed_engine: AsyncEngine,
) -> None:
    buyer = await make_committed_user(Role.buyer)
    first, second = await committed_order(buyer.user), await committed_order(buyer.user)
    server = await serve()

    async def listeners() -> int:
        async with committed_engine.connect() as conn:
            count = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'marketplace-api-listen' "
                    "AND datname = current_database()"
                )
            )
        return int(count or 0)

    async with (
        open_stream(
            server.base_url, f"/v1/buyer/orders/{first.order.id}/events", buyer.headers
        ) as (_, sse_a),
        open_stream(
            server.base_url, f"/v1/buyer/orders/{second.order.id}/events", buyer.headers
        ) as (_, sse_b),
    ):
        await sse_a.next_event()
        await sse_b.next_event()
        await asyncio.wait_for(server.broadcaster.connected.wait(), 5)  # type: ignore[union-attr]
        assert server.broadcaster is not None
        assert server.broadcaster.subscriber_count == 2
        assert await listeners() == 1  # one LISTEN connection for both streams

        started = time.monotonic()
        ping = await sse_a.next(within=HEARTBEAT * 10)
        assert ping.comments == ["ping"]
        assert time.monotonic() - started < HEARTBEAT * 5

        # A change of one order wakes only that order's stream.
        await ship(committed_engine, second.order.id)
        frame = await sse_b.next_event(within=2)
        assert frame.data is not None
        assert frame.data["order_id"] == str(second.order.id)

    # The clients went away: the server notices, unsubscribes, and closes the LISTEN connection.
    broadcaster = server.broadcaster

    async def released() -> bool:
        return broadcaster.subscriber_count == 0 and await listeners() == 0

    await eventually(released, within=5)


async def test_stream_survives_losing_the_listen_connection(
    serve: Serve,
    make_committed_user: MakeUser,
    committed_order: CommittedOrder,
    committed_engine: AsyncEngine,
) -> None:
    buyer = await make_committed_user(Role.buyer)
    placed = await committed_order(buyer.user)
    server = await serve()
    path = f"/v1/buyer/orders/{placed.order.id}/events"
    async with open_stream(server.base_url, path, buyer.headers) as (_, sse):
        await sse.next_event()
        broadcaster = server.broadcaster
        assert broadcaster is not None
        await asyncio.wait_for(broadcaster.connected.wait(), 5)
        async with committed_engine.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'marketplace-api-listen' "
                    "AND datname = current_database()"
                )
            )
        assert killed == 1
        # Committed while nobody listens: caught up after the reconnection (resync).
        async with AsyncSession(committed_engine) as session:
            await session.execute(
                text("UPDATE orders SET fulfilment_status = 'shipped' WHERE id = :id"),
                {"id": placed.order.id},
            )
            await session.commit()
        frame = await sse.next_event(within=10)
        assert frame.data is not None
        assert frame.data["fulfilment_status"] == "shipped"
        assert broadcaster.connections_made >= 2


async def test_triggers_record_order_and_payment_changes(
    session: AsyncSession, make_user: MakeUser
) -> None:
    from sqlalchemy import select

    from marketplace_api.live.models import OrderEvent
    from marketplace_api.payments.models import PaymentStatus
    from marketplace_api.payments.state import mark_succeeded
    from tests.fixtures.orders import place_order

    buyer = await make_user(Role.buyer)
    placed = await place_order(session, buyer.user)
    payment = placed.payment
    await mark_succeeded(session, payment, now=datetime.now(UTC))
    order = await session.get(Order, placed.order.id)
    assert order is not None
    assert payment.status is PaymentStatus.succeeded
    order.fulfilment_status = FulfilmentStatus.shipped
    await session.flush()
    order.shipping = {"note": "no status change"}  # not a status: no event
    await session.flush()
    rows = (
        (
            await session.execute(
                select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
            )
        )
        .scalars()
        .all()
    )
    assert [(r.kind, r.status, r.fulfilment_status, r.payment_status) for r in rows] == [
        ("payment", "pending_payment", "unfulfilled", "succeeded"),
        ("order", "paid", "unfulfilled", "succeeded"),
        ("order", "paid", "shipped", "succeeded"),
    ]


async def test_processing_then_declined_payment_is_pushed_with_the_failure_code(
    serve: Serve, make_committed_user: MakeUser, committed_order: CommittedOrder
) -> None:
    buyer = await make_committed_user(Role.buyer)
    placed = await committed_order(buyer.user)
    server = await serve()

    def intent_event(type_: str, status: str, error: dict[str, str] | None) -> dict[str, object]:
        evt = succeeded_event(placed)
        evt["type"] = type_
        intent = evt["data"]["object"]  # type: ignore[index]
        intent.update(status=status, latest_charge=None, last_payment_error=error)
        return evt

    path = f"/v1/buyer/orders/{placed.order.id}/events"
    async with open_stream(server.base_url, path, buyer.headers) as (_, sse):
        await sse.next_event()
        await asyncio.wait_for(server.broadcaster.connected.wait(), 5)  # type: ignore[union-attr]
        await deliver_webhook(
            server.base_url, intent_event("payment_intent.processing", "processing", None)
        )
        processing = await sse.next_event(within=1)
        declined_event = intent_event(
            "payment_intent.payment_failed",
            "requires_payment_method",
            {"type": "card_error", "code": "card_declined", "message": "Your card was declined."},
        )
        await deliver_webhook(server.base_url, declined_event)
        declined = await sse.next_event(within=1)

    assert processing.data is not None
    assert (processing.data["status"], processing.data["payment_status"]) == (
        "pending_payment",
        "processing",
    )
    assert declined.data is not None
    assert declined.data["payment_status"] == "requires_payment"
    assert declined.data["payment_failure_code"] == "card_declined"


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("42", 42),
        (" 7 ", 7),
        ("²", None),
        ("٣", None),
        ("-1", None),
        ("9" * 19, None),
        (None, None),
    ],
)
def test_last_event_id_is_an_ascii_number_or_ignored(
    header: str | None, parsed: int | None
) -> None:
    """Headers arrive as latin-1: "²" is a digit to str.isdigit() but not to int()."""
    from marketplace_api.live.sse import parse_last_event_id

    assert parse_last_event_id(header) == parsed
