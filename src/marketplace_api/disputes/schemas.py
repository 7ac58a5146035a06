from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class DisputeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    stripe_dispute_id: str
    payment_id: uuid.UUID
    stripe_charge_id: str | None
    stripe_account_id: str | None
    amount: int
    currency: str
    reason: str | None
    status: str
    is_open: bool
    evidence_due_by: datetime | None
    created_at: datetime
    closed_at: datetime | None


class DisputePage(BaseModel):
    items: list[DisputeRead]
    next_cursor: str | None
