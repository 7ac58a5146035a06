"""The versioned API: one router per audience, each guarded by its role."""

from fastapi import APIRouter

from marketplace_api.api.v1.admin import router as admin_router
from marketplace_api.api.v1.auth.routes import router as auth_router
from marketplace_api.api.v1.buyer import router as buyer_router
from marketplace_api.api.v1.platform import router as platform_router
from marketplace_api.api.v1.vendor import router as vendor_router

router = APIRouter(prefix="/v1")
router.include_router(auth_router)
router.include_router(platform_router)
router.include_router(buyer_router)
router.include_router(vendor_router)
router.include_router(admin_router)
