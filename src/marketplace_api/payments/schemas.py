from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from marketplace_api.config import ChargeType
from marketplace_api.payments.models import PaymentStatus


class PaymentRead(BaseModel):
    id: uuid.UUID
    status: PaymentStatus
    charge_type: ChargeType
    amount: int
    currency: str
    platform_fee: int
    amount_refunded: int
    client_secret: str | None = Field(description="Only while the payment waits for the buyer.")
    stripe_account: str | None = Field(description="Direct charges: the vendor's account.")
    failure_code: str | None = Field(description="Why the last attempt failed (e.g. a decline).")
    failure_message: str | None
    order_ids: list[uuid.UUID]
    expires_at: datetime = Field(description="When the stock reservation ends if unpaid.")
    created_at: datetime
