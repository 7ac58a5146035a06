from __future__ import annotations

import enum
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, Timestamps, UUIDPrimaryKey


class ListingStatus(enum.StrEnum):
    draft = "draft"
    active = "active"
    archived = "archived"


class Listing(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "listings"
    __table_args__ = (
        sa.CheckConstraint("price_amount > 0", name="price_amount_positive"),
        # Stock is reserved with a conditional UPDATE; the database refuses to go below zero.
        sa.CheckConstraint("stock_quantity >= 0", name="stock_quantity_non_negative"),
        # Storefront: active listings in a stable (created_at, id) keyset order.
        sa.Index("ix_listings_status_created_id", "status", "created_at", "id"),
        sa.Index("ix_listings_vendor_created_id", "vendor_id", "created_at", "id"),
    )

    vendor_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("vendors.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.String(5000))
    price_amount: Mapped[int] = mapped_column(sa.BigInteger)  # minor units of `currency`
    currency: Mapped[str] = mapped_column(sa.String(3))
    stock_quantity: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[ListingStatus] = mapped_column(
        sa.Enum(ListingStatus, name="listing_status", native_enum=False, length=16),
        server_default=ListingStatus.draft.value,
    )
