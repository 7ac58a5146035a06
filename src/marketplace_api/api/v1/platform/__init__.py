"""Public routes under /v1/platform: the storefront and client configuration. No token needed."""

from fastapi import APIRouter

from marketplace_api.api.v1.platform import config, listings, vendors

router = APIRouter(prefix="/platform")
router.include_router(config.router)
router.include_router(vendors.router)
router.include_router(listings.router)
