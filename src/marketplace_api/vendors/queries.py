"""Reads of the vendors table that other domains need without the vendor services."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.vendors.models import Vendor


async def vendor_id_of(session: AsyncSession, user_id: uuid.UUID) -> uuid.UUID | None:
    """The id of the vendor profile of a vendor user (None before the profile exists)."""
    return await session.scalar(select(Vendor.id).where(Vendor.user_id == user_id))


async def get_vendor_of_user(session: AsyncSession, user_id: uuid.UUID) -> Vendor | None:
    """The vendor profile of a vendor user (None before the profile exists)."""
    return await session.scalar(select(Vendor).where(Vendor.user_id == user_id))


async def vendor_contacts(
    session: AsyncSession, vendor_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """vendor id -> (display name, email of the vendor's user)."""
    rows = await session.execute(
        select(Vendor.id, Vendor.display_name, User.email)
        .join(User, User.id == Vendor.user_id)
        .where(Vendor.id.in_(vendor_ids))
    )
    return {vendor_id: (name, email) for vendor_id, name, email in rows.all()}
