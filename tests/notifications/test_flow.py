"""The whole flow through the real endpoints, queue and a real SMTP server: paid (signed webhook)
→ shipped (vendor) → refunded (vendor, Stripe mocked) sends each email once; a duplicate webhook
sends nothing new."""

from __future__ import annotations

import httpx
import respx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.accounts.models import Role
from tests.conftest import MakeUser
from tests.fixtures.money import refund_handler
from tests.fixtures.orders import make_vendor, place_order, succeeded_event
from tests.notifications.conftest import Drain, SmtpServer, deliver, mail_settings


def subjects(smtp: SmtpServer, address: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp.inbox.to(address)]


async def test_paid_shipped_refunded_emails_once_each(
    queue_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
    smtp: SmtpServer,
    drain: Drain,
    database_url: str,
) -> None:
    buyer = await make_committed_user(Role.buyer)
    vendor_user = await make_committed_user(Role.vendor)
    async with AsyncSession(queue_engine, expire_on_commit=False) as session:
        vendor, _ = await make_vendor(session, user=vendor_user.user)
        placed = await place_order(session, buyer.user, vendor=vendor)
    settings = mail_settings(database_url, smtp.url)
    paid = succeeded_event(placed)

    # Paid: Stripe's signed event → the buyer's receipt and the vendor's "new paid order".
    assert (await deliver(committed_client, paid))["status"] == "processed"
    await drain(settings)
    assert subjects(smtp, buyer.user.email) == ["Your receipt: $64.99"]
    assert subjects(smtp, vendor_user.user.email) == ["New paid order: $64.99"]

    # Stripe delivers the same event again, and another event about the same PaymentIntent.
    assert (await deliver(committed_client, paid))["duplicate"] is True
    assert (await deliver(committed_client, succeeded_event(placed)))["status"] == "processed"
    await drain(settings)
    assert len(smtp.inbox.messages) == 2

    # Shipped by the vendor.
    shipped = await committed_client.post(
        f"/v1/vendor/orders/{placed.order.id}/ship",
        json={"carrier": "UPS", "tracking_number": "1Z999AA10123456784"},
        headers=vendor_user.headers,
    )
    assert shipped.status_code == 200, shipped.text
    await drain(settings)
    [shipped_email] = [m for m in smtp.inbox.to(buyer.user.email) if "shipped" in str(m["Subject"])]
    text_part = shipped_email.get_body(("plain",))
    assert text_part is not None
    assert "Tracking number: 1Z999AA10123456784" in text_part.get_content()

    # Partly refunded by the vendor (Stripe answers the refund succeeded).
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler(with_reversal=True))
    refunded = await committed_client.post(
        f"/v1/vendor/orders/{placed.order.id}/refunds",
        json={"amount": 1000, "reason": "requested_by_customer"},
        headers=vendor_user.headers,
    )
    assert refunded.status_code == 201, refunded.text
    await drain(settings)

    assert subjects(smtp, buyer.user.email) == [
        "Your receipt: $64.99",
        "Your order from Acme Ceramics has shipped",
        "Refund of $10.00 from Acme Ceramics",
    ]
    assert subjects(smtp, vendor_user.user.email) == ["New paid order: $64.99"]
