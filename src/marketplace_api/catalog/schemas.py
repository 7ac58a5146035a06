from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from marketplace_api.catalog.models import ListingStatus
from marketplace_api.inputs import Amount, Text


def _strip_title(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


class ListingCreate(BaseModel):
    title: Text = Field(min_length=1, max_length=200, examples=["Stoneware mug"])
    description: Text | None = Field(default=None, max_length=5000)
    price_amount: Amount = Field(
        description="Price of one unit in the currency's minor unit (cents for usd, yen for jpy, "
        "fils for kwd: a multiple of 10). Between Stripe's minimum and maximum charge for the "
        "currency (`GET /v1/platform/config`), so that one unit can always be bought.",
        examples=[2500],
    )
    currency: str = Field(pattern=r"^[A-Za-z]{3}$", examples=["usd"])
    stock_quantity: int = Field(ge=0, le=1_000_000, strict=True)
    status: Literal["draft", "active"] = "draft"

    _title = field_validator("title")(_strip_title)

    @field_validator("currency")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class ListingUpdate(BaseModel):
    """Only the fields sent change. `status: archived` is what DELETE does."""

    title: Text | None = Field(default=None, min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=5000)
    price_amount: Amount | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    stock_quantity: int | None = Field(default=None, ge=0, le=1_000_000, strict=True)
    status: ListingStatus | None = None

    _title = field_validator("title")(_strip_title)

    @field_validator("currency")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value


class _ListingFields(BaseModel):
    """What every reader of a listing sees first (the owner and the storefront)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    vendor_id: uuid.UUID
    title: str
    description: str | None
    price_amount: int
    currency: str
    stock_quantity: int


class ListingRead(_ListingFields):
    status: ListingStatus
    created_at: datetime
    updated_at: datetime


class ListingPage(BaseModel):
    items: list[ListingRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class ListingPublic(_ListingFields):
    """A listing as the storefront shows it."""

    created_at: datetime


class ListingPublicPage(BaseModel):
    items: list[ListingPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")
