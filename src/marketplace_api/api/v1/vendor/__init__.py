"""Routes for vendors under /v1/vendor. Every route requires a vendor's access token."""

from fastapi import APIRouter

from marketplace_api.accounts.models import Role
from marketplace_api.deps import require_role

router = APIRouter(prefix="/vendor", dependencies=[require_role(Role.vendor)])
