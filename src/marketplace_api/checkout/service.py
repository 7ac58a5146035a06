"""Checkout: a cart becomes one payment and one order per vendor, with stock reserved, then a
PaymentIntent.

1. validate the cart (listings on sale, vendors able to take payments, one currency, amounts
   Stripe can charge), merging lines of the same listing;
2. reserve stock with conditional UPDATEs (all or nothing; 409 `out_of_stock` names the listing);
3. write the payment, orders and items, COMMIT;
4. create the PaymentIntent (`payments.service.ensure_payment_intent`, idempotency key
   `payment:<id>:create`) with no transaction open, and record it;
5. answer from the rows just written and the payment as recorded (no reads after the COMMIT).

A fresh checkout is 11 statements with a one-listing cart (BEGIN, the buyer, the cart, 3 INSERTs,
the stock UPDATE, COMMIT; BEGIN, UPDATE payments ... RETURNING, COMMIT), see
tests/orders/test_roundtrips.py.

With an API `Idempotency-Key`, step 3 also records the payment id on the key (the recovery point),
so a retry after a Stripe timeout resumes at step 4 for the same payment.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.catalog.models import Listing, ListingStatus
from marketplace_api.checkout.orders import checkout_read, placed_checkout_read
from marketplace_api.checkout.schemas import MAX_QUANTITY, CheckoutCreate, CheckoutRead
from marketplace_api.config import ChargeType, Settings
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.money import InvalidAmount, split_fee, validate_charge_amount
from marketplace_api.orders.exceptions import (
    InvalidCartAmount,
    ListingsUnavailable,
    MixedCurrencies,
    TooManyItems,
    VendorCannotAcceptPayments,
)
from marketplace_api.orders.models import Order, OrderItem, OrderStatus
from marketplace_api.orders.stock import reserve_stock
from marketplace_api.payments import intents
from marketplace_api.payments.exceptions import PaymentNotFound
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.service import ensure_payment_intent
from marketplace_api.tables import table_of
from marketplace_api.vendors.models import Vendor

# The statements, built once: building one on every call cost more CPU than sending it.
_PAYMENTS = table_of(Payment)
_ORDERS = table_of(Order)
_INSERT_PAYMENT = insert(_PAYMENTS)
# The order's server defaults come back with the INSERT: the answer shows them.
_INSERT_ORDERS = insert(_ORDERS).returning(
    _ORDERS.c.id,
    _ORDERS.c.fulfilment_status,
    _ORDERS.c.amount_refunded,
    _ORDERS.c.status_updated_at,
    _ORDERS.c.created_at,
    _ORDERS.c.updated_at,
)
_INSERT_ITEMS = insert(table_of(OrderItem))
_CART = (
    select(Listing, Vendor)
    .join(Vendor, Vendor.id == Listing.vendor_id)
    .where(Listing.id.in_(bindparam("listing_ids", expanding=True)))
)


@dataclass(frozen=True, slots=True)
class _Line:
    listing: Listing
    quantity: int


@dataclass(frozen=True, slots=True)
class PlacedCheckout:
    """What step 3 wrote and committed, as transient model objects (not in the session); the
    orders' server defaults (`created_at`, ...) came back with their INSERT's RETURNING."""

    payment: Payment
    orders: list[Order]
    items: list[OrderItem]


def _snapshot(details: BaseModel | None) -> dict[str, Any] | None:
    return details.model_dump(mode="json") if details is not None else None


def merge_lines(body: CheckoutCreate) -> dict[uuid.UUID, int]:
    quantities: dict[uuid.UUID, int] = defaultdict(int)
    for item in body.items:
        quantities[item.listing_id] += item.quantity
    too_many = [str(i) for i, q in quantities.items() if q > MAX_QUANTITY]
    if too_many:
        raise TooManyItems(
            f"At most {MAX_QUANTITY} units of a listing per order.",
            items=[{"listing_id": i} for i in too_many],
        )
    return dict(quantities)


async def _load_cart(
    session: AsyncSession, quantities: dict[uuid.UUID, int]
) -> dict[uuid.UUID, tuple[Vendor, list[_Line]]]:
    rows = (await session.execute(_CART, {"listing_ids": list(quantities)})).all()
    found = {listing.id: (listing, vendor) for listing, vendor in rows}
    unavailable = [
        i for i in quantities if i not in found or found[i][0].status is not ListingStatus.active
    ]
    if unavailable:
        raise ListingsUnavailable(unavailable)
    blocked = {v.id: v for _, v in found.values() if not v.can_accept_payments}
    if blocked:
        raise VendorCannotAcceptPayments(
            sorted(blocked), [i for i, (_, v) in found.items() if v.id in blocked]
        )
    currencies = {listing.currency for listing, _ in found.values()}
    if len(currencies) > 1:
        raise MixedCurrencies(
            [{"listing_id": str(i), "currency": li.currency} for i, (li, _) in found.items()]
        )
    by_vendor: dict[uuid.UUID, tuple[Vendor, list[_Line]]] = {}
    for listing_id in sorted(quantities):
        listing, vendor = found[listing_id]
        by_vendor.setdefault(vendor.id, (vendor, []))[1].append(
            _Line(listing, quantities[listing_id])
        )
    return by_vendor


def choose_charge_type(vendors: list[Vendor], settings: Settings) -> ChargeType:
    """A multi-vendor cart is always separate charges & transfers (one payment, one transfer per
    vendor: the other types pay a single account); otherwise the vendor's override, else the
    platform default."""
    if len(vendors) > 1:
        return ChargeType.separate
    return vendors[0].charge_type_override or settings.default_charge_type


async def place_checkout(
    session: AsyncSession,
    settings: Settings,
    buyer: User,
    body: CheckoutCreate,
    *,
    now: datetime,
    idempotency: IdempotencyContext | None = None,
) -> PlacedCheckout:
    """Steps 1-3: validate, reserve and write the payment, orders and items; commits. Returns
    what it wrote."""
    quantities = merge_lines(body)
    cart = await _load_cart(session, quantities)
    vendors = [vendor for vendor, _ in cart.values()]
    charge_type = choose_charge_type(vendors, settings)
    currency = next(iter(cart.values()))[1][0].listing.currency
    expires_at = now + timedelta(seconds=settings.reservation_ttl_seconds)

    payment_id = uuid.uuid4()
    order_rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    for vendor, lines in cart.values():
        amount = sum(line.listing.price_amount * line.quantity for line in lines)
        try:
            validate_charge_amount(amount, currency)
        except InvalidAmount as exc:
            raise InvalidCartAmount(str(exc), vendor_id=str(vendor.id)) from exc
        fee_bps = (
            vendor.fee_bps_override
            if vendor.fee_bps_override is not None
            else settings.platform_fee_bps
        )
        split = split_fee(amount, fee_bps)
        order_id = uuid.uuid4()
        order_rows.append(
            {
                "id": order_id,
                "payment_id": payment_id,
                "buyer_id": buyer.id,
                "vendor_id": vendor.id,
                "vendor_stripe_account_id": vendor.stripe_account_id,
                "status": OrderStatus.pending_payment,
                "currency": currency,
                "amount": split.amount,
                "platform_fee": split.platform_fee,
                "vendor_amount": split.vendor_amount,
                "fee_bps": fee_bps,
                "reservation_expires_at": expires_at,
                "shipping": _snapshot(body.shipping),
                "contact": _snapshot(body.contact),
            }
        )
        item_rows += [
            {
                "id": uuid.uuid4(),
                "order_id": order_id,
                "listing_id": line.listing.id,
                "title": line.listing.title,
                "unit_amount": line.listing.price_amount,
                "quantity": line.quantity,
                "amount": line.listing.price_amount * line.quantity,
            }
            for line in lines
        ]
    total = sum(o["amount"] for o in order_rows)
    try:
        validate_charge_amount(total, currency)  # the payment, also when it pays several orders
    except InvalidAmount as exc:
        raise InvalidCartAmount(str(exc)) from exc

    single_vendor = vendors[0] if len(vendors) == 1 else None
    payment_row = {
        "id": payment_id,
        "buyer_id": buyer.id,
        "charge_type": charge_type,
        "status": PaymentStatus.requires_payment,
        "currency": currency,
        "amount": total,
        "platform_fee": sum(o["platform_fee"] for o in order_rows),
        "stripe_account_id": (
            single_vendor.stripe_account_id
            if charge_type is ChargeType.direct and single_vendor
            else None
        ),
        "transfer_group": f"payment_{payment_id}" if charge_type is ChargeType.separate else None,
        "receipt_email": buyer.email,
        "statement_descriptor_suffix": (
            intents.statement_descriptor_suffix(single_vendor.display_name)
            if single_vendor
            else None
        ),
        "reservation_expires_at": expires_at,
    }
    # Core INSERTs in foreign-key order (the models have no relationships, so the ORM's unit of
    # work could not order them in one flush).
    await session.execute(_INSERT_PAYMENT, payment_row)
    defaults = {row.id: row._mapping for row in await session.execute(_INSERT_ORDERS, order_rows)}
    await session.execute(_INSERT_ITEMS, item_rows)
    if idempotency is not None:
        await idempotency.bind(session, payment_id)
    # Last before COMMIT: the reservation's row lock on each listing is held for one round trip,
    # so buyers of a popular listing queue behind each other as briefly as possible.
    await reserve_stock(session, quantities)  # raises OutOfStock; the caller rolls back
    await session.commit()
    # What was written, as (transient) model objects for the PaymentIntent and the answer.
    return PlacedCheckout(
        Payment(**payment_row),
        [Order(**{**row, **defaults[row["id"]]}) for row in order_rows],
        [OrderItem(**row) for row in item_rows],
    )


async def checkout(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    buyer: User,
    body: CheckoutCreate,
    *,
    now: datetime,
    idempotency: IdempotencyContext | None = None,
) -> CheckoutRead:
    """The whole checkout and its answer; a retry of the same Idempotency-Key resumes the
    payment it created (and answers from the database)."""
    on_behalf_of = settings.destination_on_behalf_of
    if idempotency is not None and idempotency.resource_id is not None:
        resumed = await session.get(Payment, idempotency.resource_id)
        if resumed is None or resumed.buyer_id != buyer.id:
            raise PaymentNotFound()
        resumed = await ensure_payment_intent(
            session, gateway, resumed, now=now, on_behalf_of=on_behalf_of
        )
        return await checkout_read(session, resumed)
    try:
        placed = await place_checkout(
            session, settings, buyer, body, now=now, idempotency=idempotency
        )
    except BaseException:
        await session.rollback()
        raise
    payment = await ensure_payment_intent(
        session, gateway, placed.payment, now=now, on_behalf_of=on_behalf_of, orders=placed.orders
    )
    return placed_checkout_read(payment, placed.orders, placed.items)
