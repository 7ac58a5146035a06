from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from marketplace_api.inputs import Amount, Text
from marketplace_api.refunds.models import (
    RefundOrigin,
    RefundReason,
    RefundRequestStatus,
    RefundStatus,
)


class RefundCreate(BaseModel):
    """Refund an order, fully (no `amount`) or partly, up to what is left to refund."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"amount": 500, "reason": "requested_by_customer"}]},
    )

    amount: Amount | None = Field(
        default=None, description="Minor units; default: everything left to refund."
    )
    reason: RefundReason = RefundReason.requested_by_customer
    note: Text | None = Field(default=None, max_length=1000)


class PaymentRefundCreate(RefundCreate):
    """Admin refund of a payment. `order_id` is required when the payment has several orders
    and an `amount` is given; without both, every order is refunded in full."""

    order_id: uuid.UUID | None = None


class RefundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    order_id: uuid.UUID
    payment_id: uuid.UUID
    amount: int
    currency: str
    vendor_share: int
    fee_share: int
    fee_refunded: int
    reason: RefundReason
    note: str | None
    origin: RefundOrigin
    status: RefundStatus
    stripe_refund_id: str | None
    failure_reason: str | None
    last_error: str | None
    created_at: datetime
    succeeded_at: datetime | None


class RefundList(BaseModel):
    refunds: list[RefundRead]


class RefundRequestCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "Arrived broken", "amount": 1500}]},
    )

    reason: Text = Field(min_length=1, max_length=2000)
    amount: Amount | None = Field(default=None, description="Default: the whole order.")


class RefundRequestDecline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Text = Field(min_length=1, max_length=1000)


class RefundRequestRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    order_id: uuid.UUID
    reason: str
    amount: int | None
    status: RefundRequestStatus
    resolution_note: str | None
    resolved_at: datetime | None
    created_at: datetime
