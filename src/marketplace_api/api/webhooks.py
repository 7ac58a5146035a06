"""`POST /webhooks/stripe` — unversioned, because Stripe is configured with this exact URL."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
