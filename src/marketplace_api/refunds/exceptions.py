from __future__ import annotations

from marketplace_api.errors import Conflict, NotFound, UnprocessableEntity


class RefundNotFound(NotFound):
    code = "refund_not_found"
    title = "Refund not found"


class RefundRequestNotFound(NotFound):
    code = "refund_request_not_found"
    title = "Refund request not found"


class NothingToRefund(Conflict):
    code = "nothing_to_refund"
    title = "Nothing is left to refund on this order"


class RefundExceedsRemainder(Conflict):
    code = "refund_exceeds_remainder"
    title = "The refund is larger than what is left to refund"


class OrderNotRefundable(Conflict):
    code = "order_not_refundable"
    title = "The order cannot be refunded now"


class RefundRequestExists(Conflict):
    code = "refund_request_exists"
    title = "A refund request is already open for this order"


class OrderRequired(UnprocessableEntity):
    code = "order_required"
    title = "Name the order to refund"


class RefundRequestClosed(Conflict):
    code = "refund_request_closed"
    title = "The refund request is no longer open"


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    title = "Payment not found"
