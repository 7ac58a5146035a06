from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from marketplace_api.config import ChargeType
from marketplace_api.disputes.schemas import DisputeRead
from marketplace_api.ledger.models import MovementKind
from marketplace_api.orders.models import FulfilmentStatus, OrderStatus
from marketplace_api.payments.models import PaymentStatus
from marketplace_api.refunds.schemas import RefundRead
from marketplace_api.transfers.schemas import TransferRead, TransferReversalRead


class MovementRead(BaseModel):
    """One money movement. `amount` is signed: + money in (charge, fee, transfer to the vendor,
    reinstatement), - money out (refund, fee share refunded, reversal, dispute withdrawal)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: MovementKind
    amount: int
    currency: str
    payment_id: uuid.UUID | None
    order_id: uuid.UUID | None
    vendor_id: uuid.UUID | None
    stripe_id: str
    occurred_at: datetime
    details: dict[str, Any] | None


class MovementPage(BaseModel):
    items: list[MovementRead]
    next_cursor: str | None


class PaymentOrderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    vendor_id: uuid.UUID
    vendor_stripe_account_id: str
    status: OrderStatus
    fulfilment_status: FulfilmentStatus
    currency: str
    amount: int
    platform_fee: int
    vendor_amount: int
    amount_refunded: int
    shipped_at: datetime | None
    delivered_at: datetime | None


class BalanceRead(BaseModel):
    """charge + refunds = transfers + platform_fee + held (all signed, minor units)."""

    currency: str
    charge: int
    refunds: int
    transfers: int
    platform_fee: int
    held: int
    disputes: int
    stripe_fee: int


class PaymentHistoryRead(BaseModel):
    id: uuid.UUID
    buyer_id: uuid.UUID
    charge_type: ChargeType
    status: PaymentStatus
    currency: str
    amount: int
    platform_fee: int
    amount_refunded: int
    stripe_fee: int | None
    stripe_payment_intent_id: str | None
    stripe_charge_id: str | None
    stripe_account_id: str | None
    transfer_group: str | None
    created_at: datetime
    succeeded_at: datetime | None
    orders: list[PaymentOrderRead]
    transfers: list[TransferRead]
    reversals: list[TransferReversalRead]
    refunds: list[RefundRead]
    disputes: list[DisputeRead]
    movements: list[MovementRead] = Field(description="Every money movement, oldest first.")
    balance: BalanceRead


class CurrencySummary(BaseModel):
    currency: str
    gross_volume: int = Field(description="Charges in the period.")
    platform_fees: int = Field(description="Fees earned minus fee shares refunded.")
    refunds: int = Field(description="Refunded to buyers (a positive number).")
    transfers: int = Field(description="Net to vendors: transfers minus reversals.")
    disputes: int = Field(description="Net dispute withdrawals (a positive number is lost).")
    stripe_fees: int
    held_balance: int = Field(description="Held for vendors at the end of the period.")


class SummaryRead(BaseModel):
    period_from: datetime = Field(serialization_alias="from")
    period_to: datetime = Field(serialization_alias="to")
    currencies: list[CurrencySummary]
