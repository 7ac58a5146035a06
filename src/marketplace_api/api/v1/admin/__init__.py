"""Routes for admins under /v1/admin. Every route requires a admin's access token."""

from fastapi import APIRouter

from marketplace_api.accounts.models import Role
from marketplace_api.deps import require_role

router = APIRouter(prefix="/admin", dependencies=[require_role(Role.admin)])

from marketplace_api.api.v1.admin import webhook_events  # noqa: E402

router.include_router(webhook_events.router)

from marketplace_api.api.v1.admin.disputes import router as disputes_router  # noqa: E402
from marketplace_api.api.v1.admin.orders import router as orders_router  # noqa: E402
from marketplace_api.api.v1.admin.payments import router as payments_router  # noqa: E402
from marketplace_api.api.v1.admin.reports import router as reports_router  # noqa: E402

router.include_router(orders_router)
router.include_router(payments_router)
router.include_router(disputes_router)
router.include_router(reports_router)

from marketplace_api.api.v1.admin import vendors  # noqa: E402

router.include_router(vendors.router)
