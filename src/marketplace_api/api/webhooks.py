"""`POST /webhooks/stripe` — unversioned, because Stripe is configured with this exact URL."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Request

from marketplace_api.deps import SessionDep, SettingsDep
from marketplace_api.errors import PayloadTooLarge, problem_responses
from marketplace_api.webhooks import service
from marketplace_api.webhooks.exceptions import (
    EventStoreUnavailable,
    InvalidPayload,
    InvalidSignature,
)
from marketplace_api.webhooks.schemas import WebhookReceipt
from marketplace_api.webhooks.signature import verify_event

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "/stripe",
    summary="Receive a signed Stripe event (platform and Connect endpoints)",
    description=(
        "Verifies `Stripe-Signature` against every secret in `STRIPE_WEBHOOK_SECRETS` (timestamp "
        "tolerance `STRIPE_WEBHOOK_TOLERANCE_SECONDS`), stores the event once and applies it "
        "exactly once. Answers 200 as soon as the event is stored, also when applying it is "
        "deferred or failed: our own retry job takes over, so Stripe does not retry."
    ),
    responses=problem_responses(
        InvalidSignature, InvalidPayload, PayloadTooLarge, EventStoreUnavailable
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "A Stripe `event` object, byte-exact as Stripe signed it.",
        }
    },
)
async def receive_stripe_event(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    stripe_signature: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> WebhookReceipt:
    payload = await request.body()  # raw bytes: the signature covers them exactly
    if len(payload) > settings.max_request_body_bytes:
        raise PayloadTooLarge(
            f"The request body must not exceed {settings.max_request_body_bytes} bytes."
        )
    try:
        event = verify_event(
            payload,
            stripe_signature,
            [secret.get_secret_value() for secret in settings.stripe_webhook_secrets],
            settings.stripe_webhook_tolerance_seconds,
        )
        receipt = await service.receive_event(session, event)
    except (InvalidPayload, InvalidSignature) as exc:
        # The reason only: the payload may hold customer data and is never logged.
        logger.warning("stripe webhook refused", extra={"code": exc.code, "reason": exc.detail})
        raise
    return WebhookReceipt(id=receipt.event_id, status=receipt.status, duplicate=receipt.duplicate)
