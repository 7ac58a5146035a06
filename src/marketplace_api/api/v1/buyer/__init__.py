"""Routes for buyers under /v1/buyer. Every route requires a buyer's access token."""

from fastapi import APIRouter

from marketplace_api.accounts.models import Role
from marketplace_api.api.v1.buyer import fulfilment, order_events, orders, payments
from marketplace_api.deps import require_role

router = APIRouter(prefix="/buyer", dependencies=[require_role(Role.buyer)])
router.include_router(orders.router)
router.include_router(payments.router)
router.include_router(fulfilment.router)
router.include_router(order_events.router)
