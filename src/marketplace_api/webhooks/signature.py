"""Verifying `Stripe-Signature` on a webhook delivery. Needs only the signing secrets, so webhooks
are verified even when STRIPE_SECRET_KEY is unset."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from marketplace_api.integrations.stripe.signature import MISMATCH, signature_refusal
from marketplace_api.webhooks.exceptions import InvalidPayload, InvalidSignature

logger = logging.getLogger(__name__)


def verify_event(
    payload: bytes, signature_header: str | None, secrets: Sequence[str], tolerance: int
) -> dict[str, Any]:
    """Check `Stripe-Signature` against every signing secret (platform endpoint, Connect endpoint,
    a rotated old secret) and return the event as JSON.

    Needs no API key. An empty `secrets` accepts nothing. Errors never contain the payload: Stripe's
    `SignatureVerificationError` carries the body, so only our own message leaves this function.
    """
    candidates = [s for s in secrets if s.strip()]
    if not candidates:
        logger.error("webhook rejected: STRIPE_WEBHOOK_SECRETS is empty")
        raise InvalidSignature("No webhook signing secret is configured on this server.")
    if not signature_header:
        raise InvalidSignature("The Stripe-Signature header is missing.")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature(MISMATCH) from None
    reason = MISMATCH
    for secret in candidates:
        refusal = signature_refusal(text, signature_header, secret, tolerance)
        if refusal is None:
            break
        if refusal != MISMATCH:  # a more telling reason (malformed, stale) from any secret
            reason = refusal
    else:
        raise InvalidSignature(reason)
    # Stripe's check refuses only timestamps older than the tolerance; one from the future (an
    # hour, ten years) would make a captured delivery replayable for that long: refused too.
    if _signed_at(signature_header) > time.time() + tolerance:
        raise InvalidSignature("The signature timestamp is outside the tolerance.")
    try:
        event = json.loads(text)
    except RecursionError:
        raise InvalidPayload("The signed payload is nested too deeply.") from None
    except ValueError:
        raise InvalidPayload("The signed payload is not JSON.") from None
    if not isinstance(event, dict):
        raise InvalidPayload("The signed payload is not an event object.")
    return event


def _signed_at(signature_header: str) -> int:
    """The newest `t=` of a header that has been verified (so at least one is an integer)."""
    stamps = []
    for item in signature_header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.strip().isdigit():
            stamps.append(int(value))
    return max(stamps, default=0)
