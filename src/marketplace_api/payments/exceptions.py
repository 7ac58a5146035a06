from __future__ import annotations

from marketplace_api.errors import Conflict, NotFound


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    title = "Payment not found"


class PaymentNotPayable(Conflict):
    code = "payment_not_payable"
    title = "The payment is not waiting for the buyer"
