from __future__ import annotations

from marketplace_api.errors import Conflict, NotFound


class TransferNotFound(NotFound):
    code = "transfer_not_found"
    title = "Transfer not found"


class OrderNotHeld(Conflict):
    code = "order_not_held"
    title = "The order's funds are not held by the platform"
    default_detail = (
        "Only separate charges are held and released; destination and direct charges pay "
        "the vendor when the buyer pays."
    )


class OrderNotReleasable(Conflict):
    code = "order_not_releasable"
    title = "The order cannot be released"


class OrderDisputed(Conflict):
    code = "order_disputed"
    title = "The order has an open dispute"


class RefundRequestOpen(Conflict):
    code = "refund_request_open"
    title = "The buyer has an open refund request on this order"
