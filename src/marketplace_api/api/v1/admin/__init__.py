"""Routes for admins under /v1/admin. Every route requires an admin's access token."""

from fastapi import APIRouter

from marketplace_api.accounts.models import Role
from marketplace_api.api.v1.admin import (
    disputes,
    orders,
    payments,
    reports,
    vendors,
    webhook_events,
)
from marketplace_api.deps import require_role

router = APIRouter(prefix="/admin", dependencies=[require_role(Role.admin)])
router.include_router(webhook_events.router)
router.include_router(orders.router)
router.include_router(payments.router)
router.include_router(disputes.router)
router.include_router(reports.router)
router.include_router(vendors.router)
