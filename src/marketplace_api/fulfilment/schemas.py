from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, UrlConstraints
from pydantic_core import PydanticCustomError

from marketplace_api.inputs import Text
from marketplace_api.orders.models import FulfilmentStatus, OrderStatus
from marketplace_api.refunds.schemas import RefundRead, RefundRequestRead
from marketplace_api.transfers.schemas import TransferRead

TRACKING_URL_MAX_LENGTH = 2000  # the column's


def _fits_column(url: HttpUrl) -> HttpUrl:
    # Checked on the normalised URL: percent-encoding and punycode can make it longer than sent.
    if len(str(url)) > TRACKING_URL_MAX_LENGTH:
        raise PydanticCustomError(
            "url_too_long",
            "URL should have at most {max_length} characters once normalised",
            {"max_length": TRACKING_URL_MAX_LENGTH},
        )
    return url


class ShipmentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}]
        },
    )

    carrier: Text = Field(min_length=1, max_length=100)
    tracking_number: Text = Field(min_length=1, max_length=100)
    tracking_url: (
        Annotated[
            HttpUrl,
            UrlConstraints(max_length=TRACKING_URL_MAX_LENGTH),
            AfterValidator(_fits_column),
        ]
        | None
    ) = None


class ShipmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    carrier: str
    tracking_number: str
    tracking_url: str | None
    shipped_at: datetime


class SaleItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    listing_id: uuid.UUID
    title: str
    unit_amount: int
    quantity: int
    amount: int


class VendorOrderRead(BaseModel):
    """A vendor's sale: what the buyer paid, the platform's fee and the vendor's share."""

    id: uuid.UUID
    payment_id: uuid.UUID
    status: OrderStatus
    fulfilment_status: FulfilmentStatus
    currency: str
    amount: int
    platform_fee: int
    vendor_amount: int
    fee_bps: int
    amount_refunded: int
    items: list[SaleItemRead]
    shipping: dict[str, object] | None
    shipment: ShipmentRead | None
    transfer: TransferRead | None
    refunds: list[RefundRead]
    open_refund_request: RefundRequestRead | None
    created_at: datetime
    paid_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None


class VendorOrderPage(BaseModel):
    items: list[VendorOrderRead]
    next_cursor: str | None


class DeliveryConfirmationRead(BaseModel):
    order_id: uuid.UUID
    fulfilment_status: FulfilmentStatus
    delivered_at: datetime | None
    transfer: TransferRead | None = Field(
        description="Separate charges: the release this confirmation triggered (or found)."
    )
    release_blocked_by: str | None = Field(
        default=None, description="Why funds stay held: `order_disputed`, `refund_request_open`."
    )
