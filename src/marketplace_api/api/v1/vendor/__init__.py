"""Routes for vendors under /v1/vendor. Every route requires a vendor's access token."""

from fastapi import APIRouter

from marketplace_api.accounts.models import Role
from marketplace_api.api.v1.vendor import (
    listings,
    order_events,
    orders,
    payments,
    profile,
    statement,
)
from marketplace_api.deps import require_role

router = APIRouter(prefix="/vendor", dependencies=[require_role(Role.vendor)])
router.include_router(orders.router)
router.include_router(statement.router)
router.include_router(order_events.router)
router.include_router(profile.router)
router.include_router(payments.router)
router.include_router(listings.router)
