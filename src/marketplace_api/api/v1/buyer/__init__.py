"""Routes for buyers under /v1/buyer. Every route requires a buyer's access token."""

from fastapi import APIRouter

from marketplace_api.accounts.models import Role
from marketplace_api.deps import require_role

router = APIRouter(prefix="/buyer", dependencies=[require_role(Role.buyer)])

from marketplace_api.api.v1.buyer.orders import router as orders_router  # noqa: E402
from marketplace_api.api.v1.buyer.payments import router as payments_router  # noqa: E402

router.include_router(orders_router)
router.include_router(payments_router)
from marketplace_api.api.v1.buyer.fulfilment import router as fulfilment_router  # noqa: E402

router.include_router(fulfilment_router)

from marketplace_api.api.v1.buyer import order_events  # noqa: E402

router.include_router(order_events.router)
