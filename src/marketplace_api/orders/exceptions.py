from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from marketplace_api.errors import Conflict, NotFound, UnprocessableEntity


class OrderNotFound(NotFound):
    code = "order_not_found"
    title = "Order not found"


class OutOfStock(Conflict):
    code = "out_of_stock"
    title = "Not enough stock"

    def __init__(self, listing_id: uuid.UUID) -> None:
        super().__init__(
            f"Listing {listing_id} does not have the requested quantity in stock.",
            listing_id=str(listing_id),
        )
        self.listing_id = listing_id


class ListingsUnavailable(UnprocessableEntity):
    code = "listing_unavailable"
    title = "Some listings cannot be bought"

    def __init__(self, listing_ids: Sequence[uuid.UUID]) -> None:
        super().__init__(
            "These listings do not exist or are not on sale.",
            items=[{"listing_id": str(i)} for i in listing_ids],
        )


class VendorCannotAcceptPayments(Conflict):
    code = "vendor_cannot_accept_payments"
    title = "A vendor cannot accept payments right now"

    def __init__(self, vendor_ids: Sequence[uuid.UUID], listing_ids: Sequence[uuid.UUID]) -> None:
        super().__init__(
            "The vendor of these listings cannot take payments at the moment.",
            vendor_ids=[str(v) for v in vendor_ids],
            items=[{"listing_id": str(i)} for i in listing_ids],
        )


class MixedCurrencies(UnprocessableEntity):
    code = "mixed_currencies"
    title = "A cart must be in one currency"

    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        super().__init__(
            "Every item of a cart must be priced in the same currency; split the cart.",
            items=list(items),
        )


class InvalidCartAmount(UnprocessableEntity):
    code = "invalid_amount"
    title = "The amount cannot be charged"


class TooManyItems(UnprocessableEntity):
    code = "too_many_items"
    title = "Too many items"


class OrderNotCancellable(Conflict):
    code = "order_not_cancellable"
    title = "The order can no longer be cancelled"
