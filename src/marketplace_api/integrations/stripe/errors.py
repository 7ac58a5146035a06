"""Stripe's exceptions as the problems we answer with. No Stripe exception leaves this package."""

from __future__ import annotations

import logging
from typing import Any

import stripe

from marketplace_api.errors import Conflict, ProblemError, ServiceUnavailable

logger = logging.getLogger(__name__)


class StripeNotConfigured(ServiceUnavailable):
    code = "stripe_not_configured"
    title = "Payments are not configured"

    def __init__(self) -> None:
        super().__init__(
            "STRIPE_SECRET_KEY is not set on this server; payment endpoints are disabled."
        )


class StripeUnavailable(ServiceUnavailable):
    code = "stripe_unavailable"
    title = "The payment provider is unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(
            detail or "Stripe could not be reached. Retry later with the same Idempotency-Key.",
            headers={"Retry-After": str(retry_after)},
        )


class StripeAnswerInvalid(StripeUnavailable):
    """Stripe answered, but not with the object it documents (a field missing or mistyped).

    Transient on purpose: the request may have been applied, so whoever retries must do so with
    the same idempotency key, exactly as after a timeout, never treat it as refused.
    """

    status = 502
    code = "stripe_answer_invalid"
    title = "The payment provider's answer could not be read"


class StripeRateLimited(StripeUnavailable):
    code = "stripe_rate_limited"
    title = "The payment provider is rate limiting us"


class StripeRequestRejected(ProblemError):
    """Stripe refused the request as invalid. A bug or a state we did not anticipate."""

    status = 502
    code = "stripe_request_rejected"
    title = "The payment provider rejected the request"


class StripePermissionDenied(Conflict):
    """The connected account does not allow this (not onboarded, capability missing, revoked)."""

    code = "stripe_permission_denied"
    title = "The vendor's Stripe account does not allow this operation"


class CardDeclined(ProblemError):
    status = 402
    code = "card_declined"
    title = "The card was declined"


def map_stripe_error(exc: stripe.StripeError) -> ProblemError:
    """Turn a Stripe exception into the problem we answer with. Never leaks Stripe's raw body."""
    request_id = getattr(exc, "request_id", None)
    extra: dict[str, Any] = {"stripe_request_id": request_id} if request_id else {}
    if isinstance(exc, stripe.CardError):
        return CardDeclined(exc.user_message or "The card was declined.", decline_code=exc.code)
    if isinstance(exc, stripe.RateLimitError):
        return StripeRateLimited()
    if isinstance(exc, stripe.APIConnectionError):
        return StripeUnavailable()
    if isinstance(exc, stripe.PermissionError):
        return StripePermissionDenied(**extra)
    if isinstance(exc, stripe.InvalidRequestError):
        logger.warning(
            "stripe rejected a request",
            extra={"stripe_code": exc.code, "stripe_param": exc.param, **extra},
        )
        return StripeRequestRejected(
            "Stripe rejected the request; it has been logged.", stripe_code=exc.code, **extra
        )
    if isinstance(exc, stripe.AuthenticationError):
        logger.error("stripe authentication failed: check STRIPE_SECRET_KEY")
        return StripeUnavailable("Payments are misconfigured on this server.", retry_after=60)
    # stripe.APIError (5xx), IdempotencyError and anything newer.
    logger.warning("stripe error", extra={"stripe_error": type(exc).__name__, **extra})
    return StripeUnavailable()
