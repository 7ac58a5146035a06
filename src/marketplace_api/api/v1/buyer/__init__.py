"""Routes for buyers under /v1/buyer. Every route requires a buyer's access token."""

from fastapi import APIRouter

from marketplace_api.accounts.models import Role
from marketplace_api.deps import require_role

router = APIRouter(prefix="/buyer", dependencies=[require_role(Role.buyer)])
