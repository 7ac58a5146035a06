"""Stripe: the client, the gateway every call goes through, and the errors it maps to."""

from marketplace_api.integrations.stripe.client import (
    SIMULATOR_TRANSPORT,
    STRIPE_API_VERSION,
    build_stripe_client,
)
from marketplace_api.integrations.stripe.errors import (
    CardDeclined,
    StripeAnswerInvalid,
    StripeNotConfigured,
    StripePermissionDenied,
    StripeRateLimited,
    StripeRequestRejected,
    StripeUnavailable,
    map_stripe_error,
)
from marketplace_api.integrations.stripe.gateway import (
    STRIPE_EVENT_TYPES,
    StripeGateway,
    WebhookEndpoint,
)

__all__ = [
    "SIMULATOR_TRANSPORT",
    "STRIPE_API_VERSION",
    "STRIPE_EVENT_TYPES",
    "CardDeclined",
    "StripeAnswerInvalid",
    "StripeGateway",
    "StripeNotConfigured",
    "StripePermissionDenied",
    "StripeRateLimited",
    "StripeRequestRejected",
    "StripeUnavailable",
    "WebhookEndpoint",
    "build_stripe_client",
    "map_stripe_error",
]
