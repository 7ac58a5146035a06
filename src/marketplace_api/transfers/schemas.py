from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from marketplace_api.transfers.models import ReleaseTrigger, ReversalStatus, TransferStatus


class TransferRead(BaseModel):
    """The vendor's held share on its way: `pending` (being made), `paid`, `failed` (Stripe
    refused; `last_error` says why, retried automatically) or `skipped` (nothing left)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    order_id: uuid.UUID
    payment_id: uuid.UUID
    vendor_id: uuid.UUID
    amount: int
    currency: str
    destination: str
    status: TransferStatus
    trigger: ReleaseTrigger
    stripe_transfer_id: str | None
    amount_reversed: int
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    transferred_at: datetime | None
    created_at: datetime


class TransferReversalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    transfer_id: uuid.UUID
    order_id: uuid.UUID
    refund_id: uuid.UUID | None
    dispute_id: uuid.UUID | None
    amount: int
    currency: str
    status: ReversalStatus
    stripe_reversal_id: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
