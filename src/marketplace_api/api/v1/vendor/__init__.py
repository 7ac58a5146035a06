"""Routes for vendors under /v1/vendor. Every route requires a vendor's access token."""

from fastapi import APIRouter

from marketplace_api.accounts.models import Role
from marketplace_api.deps import require_role

router = APIRouter(prefix="/vendor", dependencies=[require_role(Role.vendor)])

from marketplace_api.api.v1.vendor.orders import router as orders_router  # noqa: E402
from marketplace_api.api.v1.vendor.statement import router as statement_router  # noqa: E402

router.include_router(orders_router)
router.include_router(statement_router)

from marketplace_api.api.v1.vendor import order_events  # noqa: E402

router.include_router(order_events.router)

from marketplace_api.api.v1.vendor import listings, payments, profile  # noqa: E402

router.include_router(profile.router)
router.include_router(payments.router)
router.include_router(listings.router)
