from marketplace_api.errors import Conflict, NotFound, UnprocessableEntity
from marketplace_api.pagination import InvalidCursor
from marketplace_api.vendors.exceptions import UnsupportedCurrency

__all__ = [
    "InvalidAmount",
    "InvalidCursor",
    "InvalidListingTransition",
    "ListingArchived",
    "ListingNotFound",
    "PriceFilterNeedsCurrency",
    "UnsupportedCurrency",
]


class ListingNotFound(NotFound):
    code = "listing_not_found"
    title = "Listing not found"


class InvalidAmount(UnprocessableEntity):
    code = "invalid_amount"
    title = "Invalid amount"


class ListingArchived(Conflict):
    code = "listing_archived"
    title = "Archived listings cannot be edited; set status to draft first"


class InvalidListingTransition(Conflict):
    code = "invalid_listing_transition"
    title = "This status change is not allowed"


class PriceFilterNeedsCurrency(UnprocessableEntity):
    code = "price_filter_needs_currency"
    title = "min_price and max_price need a currency (amounts are in its minor unit)"
