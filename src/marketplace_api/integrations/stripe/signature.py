"""Stripe's own check of a `Stripe-Signature` header (HMAC-SHA256 of `<t>.<payload>`), for the
webhooks package's `verify_event`, which keeps the policy (secrets, future timestamps, JSON)."""

from __future__ import annotations

import stripe

MISMATCH = "The signature does not match the payload."


def signature_refusal(text: str, signature_header: str, secret: str, tolerance: int) -> str | None:
    """None when the header signs `text` with `secret` within `tolerance`; otherwise why not, in
    our own words (Stripe's exception carries the payload, so it never leaves this function)."""
    try:
        stripe.WebhookSignature.verify_header(text, signature_header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        message = exc.user_message or ""
        if "tolerance" in message:
            return "The signature timestamp is outside the tolerance."
        if "extract" in message or "scheme" in message:
            return "The Stripe-Signature header is malformed."
        return MISMATCH
    return None
