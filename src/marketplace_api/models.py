"""Every model, imported in one place so `Base.metadata` is complete (Alembic, tests)."""

from marketplace_api.accounts.models import RefreshToken, User
from marketplace_api.catalog.models import Listing
from marketplace_api.db import Base
from marketplace_api.disputes.models import Dispute
from marketplace_api.fulfilment.models import Shipment
from marketplace_api.idempotency.models import IdempotencyKey
from marketplace_api.ledger.models import MoneyMovement
from marketplace_api.live.models import OrderEvent
from marketplace_api.notifications.models import Notification
from marketplace_api.orders.models import Order, OrderItem
from marketplace_api.payments.models import Payment
from marketplace_api.reconcile.checks import ReconcileCheck
from marketplace_api.refunds.models import Refund, RefundRequest
from marketplace_api.transfers.models import Transfer, TransferReversal
from marketplace_api.vendors.models import Vendor
from marketplace_api.webhooks.models import StripeEvent

__all__ = [
    "Base",
    "Dispute",
    "IdempotencyKey",
    "Listing",
    "MoneyMovement",
    "Notification",
    "Order",
    "OrderEvent",
    "OrderItem",
    "Payment",
    "ReconcileCheck",
    "RefreshToken",
    "Refund",
    "RefundRequest",
    "Shipment",
    "StripeEvent",
    "Transfer",
    "TransferReversal",
    "User",
    "Vendor",
]
