"""Shipments: the carrier and tracking number a vendor gave when shipping an order.

The order's `fulfilment_status` (unfulfilled → shipped → delivered) changes only through
`fulfilment/service.py`'s conditional UPDATEs.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, Timestamps, UUIDPrimaryKey


class Shipment(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "shipments"

    order_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="RESTRICT"), unique=True
    )
    carrier: Mapped[str] = mapped_column(sa.String(100))
    tracking_number: Mapped[str] = mapped_column(sa.String(100))
    tracking_url: Mapped[str | None] = mapped_column(sa.String(2000))
    shipped_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    shipped_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
