from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from marketplace_api.config import ChargeType
from marketplace_api.inputs import CountryCode, Email, Text
from marketplace_api.orders.models import FulfilmentStatus, OrderStatus
from marketplace_api.payments.models import PaymentStatus

MAX_QUANTITY = 100
MAX_CART_LINES = 100  # Stripe Checkout takes at most 100 line items in payment mode


class CheckoutItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listing_id: uuid.UUID
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True)


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line1: Text = Field(min_length=1, max_length=200)
    line2: Text | None = Field(default=None, max_length=200)
    city: Text = Field(min_length=1, max_length=100)
    postal_code: Text | None = Field(default=None, max_length=20)
    state: Text | None = Field(default=None, max_length=100)
    country: CountryCode


class ShippingDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    address: Address
    phone: Text | None = Field(default=None, max_length=40)


class ContactDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    phone: Text | None = Field(default=None, max_length=40)


class CheckoutCreate(BaseModel):
    """A cart. Lines naming the same listing are merged; one order is made per vendor."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"listing_id": "6f1c1b1e-8d3a-4a8e-9a51-3c2f5d9e7a10", "quantity": 2},
                        {"listing_id": "0b7e2a44-5f7c-4c1e-8a2b-9d4e3f6a1c22", "quantity": 1},
                    ],
                    "shipping": {
                        "name": "Jenny Rosen",
                        "address": {
                            "line1": "1 Main St",
                            "city": "Springfield",
                            "postal_code": "12345",
                            "country": "US",
                        },
                    },
                    "contact": {"email": "jenny@example.com"},
                }
            ]
        },
    )

    items: list[CheckoutItem] = Field(min_length=1, max_length=MAX_CART_LINES)
    shipping: ShippingDetails | None = None
    contact: ContactDetails | None = None


class OrderItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    listing_id: uuid.UUID
    title: str
    unit_amount: int
    quantity: int
    amount: int


class OrderRead(BaseModel):
    id: uuid.UUID
    payment_id: uuid.UUID
    vendor_id: uuid.UUID
    status: OrderStatus
    fulfilment_status: FulfilmentStatus
    payment_status: PaymentStatus
    currency: str = Field(examples=["usd"])
    amount: int = Field(description="What the buyer pays for this order, in minor units.")
    platform_fee: int
    vendor_amount: int = Field(description="The vendor's share: amount - platform_fee.")
    amount_refunded: int
    reservation_expires_at: datetime
    shipping: dict[str, Any] | None
    contact: dict[str, Any] | None
    items: list[OrderItemRead]
    created_at: datetime


class OrderPage(BaseModel):
    items: list[OrderRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class CheckoutRead(BaseModel):
    """What the SPA needs to confirm the payment with Stripe.js (Payment Element)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "payment_id": "9b2d6c1e-2f4a-4b7e-8c3d-1a2b3c4d5e6f",
                    "client_secret": "pi_3QaBcD2eZvKYlo2C1a2b3c4d_secret_XyZ123",
                    "amount": 4500,
                    "currency": "usd",
                    "platform_fee": 450,
                    "charge_type": "destination",
                    "stripe_account": None,
                    "status": "requires_payment",
                    "orders": [],
                    "expires_at": "2026-11-22T10:15:00Z",
                }
            ]
        }
    )

    payment_id: uuid.UUID
    client_secret: str | None = Field(
        description="For `stripe.confirmPayment`; null only while the payment is being retried."
    )
    amount: int
    currency: str
    platform_fee: int
    charge_type: ChargeType
    stripe_account: str | None = Field(
        description="Direct charges only: initialise Stripe.js with `{stripeAccount}`."
    )
    status: PaymentStatus
    orders: list[OrderRead]
    expires_at: datetime = Field(description="When the stock reservation ends if unpaid.")


class CheckoutSessionRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://checkout.stripe.com/c/pay/cs_test_a1B2c3D4e5F6g7H8",
                    "session_id": "cs_test_a1B2c3D4e5F6g7H8",
                    "expires_at": "2026-11-22T10:45:00Z",
                }
            ]
        }
    )

    url: str
    session_id: str
    expires_at: datetime
