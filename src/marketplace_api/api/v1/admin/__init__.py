"""Routes for admins under /v1/admin. Every route requires a admin's access token."""

from fastapi import APIRouter

from marketplace_api.accounts.models import Role
from marketplace_api.deps import require_role

router = APIRouter(prefix="/admin", dependencies=[require_role(Role.admin)])

from marketplace_api.api.v1.admin import webhook_events  # noqa: E402

router.include_router(webhook_events.router)
