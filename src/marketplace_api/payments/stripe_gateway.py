"""The one module that talks to Stripe.

Every call is async (`StripeClient` on `HTTPXClient`, `*_async` methods), carries an idempotency
key derived from our own row when it is a POST, and puts our ids in `metadata` so Stripe objects
lead back to our rows. Stripe's exceptions never leave this module: they are mapped to domain
problems (`StripeUnavailable`, `StripeRequestRejected`, ...).

The API version is pinned to the one the installed SDK was generated for, so the shapes of the
objects we read do not change under us when the account's default version moves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import typing
from collections.abc import Awaitable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import httpx
import stripe
from opentelemetry.trace import SpanKind

from marketplace_api import tracing
from marketplace_api.config import Settings
from marketplace_api.errors import Conflict, ProblemError, ServiceUnavailable
from marketplace_api.metrics import stripe_call
from marketplace_api.webhooks.exceptions import InvalidPayload, InvalidSignature

logger = logging.getLogger(__name__)


def _drop_debug(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


# At DEBUG the SDK logs whole request and response bodies: client secrets, e-mail addresses,
# metadata; at INFO, Stripe's error messages, which may quote what was sent. Those records are
# dropped whatever LOG_LEVEL says (the gateway logs each error's type, code, param and request
# id itself); WARNING and above follow LOG_LEVEL (tests/security/test_logs_hold_no_secrets.py).
logging.getLogger("stripe").addFilter(_drop_debug)

_T = TypeVar("_T")

STRIPE_API_VERSION = stripe.api_version

# Re-exported so other modules can type things without importing `stripe` themselves.
StripeObject = stripe.StripeObject
SignatureVerificationError = stripe.SignatureVerificationError


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


class _FormContentHTTPXClient(stripe.HTTPXClient):
    """stripe 16.1 hands httpx the encoded form as `data=<str>`, which httpx 0.28 deprecates (a
    later httpx refuses it); send the same bytes as `content=` instead."""

    def _get_request_args_kwargs(  # type: ignore[no-untyped-def]
        self, method: str, url: str, headers: Any, post_data
    ):
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        data = kwargs.pop("data", None)
        if isinstance(data, str | bytes):
            kwargs["content"] = data
        elif data:
            kwargs["data"] = data
        return args, kwargs

    async def request_async(  # type: ignore[no-untyped-def]
        self, method: str, url: str, headers: Any, post_data=None
    ) -> tuple[bytes, int, Any]:
        """One HTTP attempt; with traces on, its key, status and request id go on the call's
        span (`StripeGateway._call`)."""
        if not tracing.enabled():
            return await super().request_async(method, url, headers, post_data)
        try:
            content, status, response_headers = await super().request_async(
                method, url, headers, post_data
            )
        except stripe.APIConnectionError:
            tracing.record_stripe_attempt(headers, None, {})
            raise
        tracing.record_stripe_attempt(headers, status, response_headers)
        return content, status, response_headers


# The development server on the Stripe simulator sets this for its lifetime, so every client
# built in the API process (its own, the in-process job worker's) talks to the simulator.
SIMULATOR_TRANSPORT: ContextVar[httpx.AsyncBaseTransport | None] = ContextVar(
    "stripe_simulator_transport", default=None
)


def build_stripe_client(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> stripe.StripeClient | None:
    """The client, or None without a secret key. `transport` (default: `SIMULATOR_TRANSPORT`)
    answers the SDK's requests instead of the network: the Stripe simulator in development."""
    if settings.stripe_secret_key is None:
        return None
    http_client = _FormContentHTTPXClient(timeout=settings.stripe_timeout_seconds)
    transport = transport or SIMULATOR_TRANSPORT.get()
    if transport is not None:
        http_client._client_async = httpx.AsyncClient(transport=transport)
    return stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value(),
        stripe_version=STRIPE_API_VERSION,
        base_addresses={
            "api": settings.stripe_api_base,
            "connect": settings.stripe_connect_api_base,
        },
        max_network_retries=settings.stripe_max_network_retries,
        http_client=http_client,
    )


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


class StripeGateway:
    """Typed, async wrapper around an injected `stripe.StripeClient`.

    Domain issues add their operations here (accounts, payment intents, transfers, refunds...).
    Each method takes the idempotency key from the caller, who derives it from its own row.
    """

    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    async def _call(self, awaitable: Awaitable[_T]) -> _T:
        """Await one Stripe call; a Stripe exception leaves as our problem (`map_stripe_error`).

        Each call is timed and counted for /metrics by its SDK method, e.g. `PaymentIntent.create`,
        and, with traces on, is one span of that name holding our idempotency key and Stripe's
        request id (never parameters).
        """
        qualname = getattr(awaitable, "__qualname__", "stripe")
        operation = qualname.replace("Service.", ".").removesuffix("_async")
        with tracing.span(
            f"stripe {operation}",
            kind=SpanKind.CLIENT,
            attributes={"stripe.operation": operation},
        ) as span:
            try:
                with stripe_call(operation):
                    return await awaitable
            except stripe.StripeError as exc:
                span.set_attribute("stripe.error", type(exc).__name__)
                raise map_stripe_error(exc) from exc

    # --- connected accounts (vendors): accounts, account links, login links, balance ---------
    # Every method answers plain JSON (`to_dict()`): no StripeObject leaves the gateway.

    async def create_express_account(
        self,
        *,
        country: str,
        email: str | None,
        business_name: str,
        product_description: str | None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> dict[str, Any]:
        """A connected account with Express-equivalent controller properties.

        Controller properties instead of the deprecated `type=express` (never both): Stripe
        collects requirements and hosts onboarding, the vendor gets the Express dashboard, and the
        platform pays Stripe's fees and is liable for losses, which destination charges and
        separate charges & transfers require.
        """
        business_profile: stripe.params._account_create_params.AccountCreateParamsBusinessProfile
        business_profile = {"name": business_name}
        if product_description:
            business_profile["product_description"] = product_description[:500]
        params: stripe.params.AccountCreateParams = {
            "country": country,
            "controller": {
                "stripe_dashboard": {"type": "express"},
                "fees": {"payer": "application"},
                "losses": {"payments": "application"},
                "requirement_collection": "stripe",
            },
            "capabilities": {
                "card_payments": {"requested": True},
                "transfers": {"requested": True},
            },
            "business_profile": business_profile,
            "metadata": metadata,
        }
        if email:
            params["email"] = email
        account = await self._call(
            self._client.v1.accounts.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )
        return account.to_dict()

    async def create_account_link(
        self, account_id: str, *, refresh_url: str, return_url: str, idempotency_key: str
    ) -> dict[str, Any]:
        """A single-use, short-lived hosted onboarding URL (`url`, `expires_at`)."""
        params: stripe.params.AccountLinkCreateParams = {
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": refresh_url,
            "return_url": return_url,
            "collection_options": {"fields": "currently_due"},
        }
        link = await self._call(
            self._client.v1.account_links.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )
        return link.to_dict()

    async def retrieve_account(self, account_id: str) -> dict[str, Any]:
        account = await self._call(self._client.v1.accounts.retrieve_async(account_id))
        return account.to_dict()

    async def create_login_link(self, account_id: str, *, idempotency_key: str) -> dict[str, Any]:
        """An Express dashboard login URL (`url`); only for onboarded Express accounts."""
        link = await self._call(
            self._client.v1.accounts.login_links.create_async(
                account_id, options={"idempotency_key": idempotency_key}
            )
        )
        return link.to_dict()

    async def retrieve_balance(self, account_id: str) -> dict[str, Any]:
        """The connected account's balance (read with `Stripe-Account`)."""
        balance = await self._call(
            self._client.v1.balance.retrieve_async(options={"stripe_account": account_id})
        )
        return balance.to_dict()

    async def update_payout_schedule(
        self,
        account_id: str,
        *,
        interval: str,
        delay_days: int | str | None,
        weekly_anchor: str | None,
        monthly_anchor: int | None,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Set `settings.payouts.schedule`; answers the updated account."""
        schedule: stripe.params._account_update_params.AccountUpdateParamsSettingsPayoutsSchedule
        schedule = {"interval": interval}
        if delay_days is not None:
            schedule["delay_days"] = "minimum" if delay_days == "minimum" else int(delay_days)
        if weekly_anchor is not None:
            schedule["weekly_anchor"] = weekly_anchor
        if monthly_anchor is not None:
            schedule["monthly_anchor"] = monthly_anchor
        params: stripe.params.AccountUpdateParams = {
            "settings": {"payouts": {"schedule": schedule}}
        }
        account = await self._call(
            self._client.v1.accounts.update_async(
                account_id, params=params, options={"idempotency_key": idempotency_key}
            )
        )
        return account.to_dict()

    # --- payments (checkout): payment intents, checkout sessions -----------------------------
    # PaymentIntents and Checkout Sessions answer plain JSON (`to_dict()`), the shape
    # `payments.state.apply_payment_intent` reads. `stripe_account` is set for direct charges only.

    async def create_payment_intent(
        self,
        *,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        idempotency_key: str,
        stripe_account: str | None = None,
        application_fee_amount: int | None = None,
        transfer_destination: str | None = None,
        on_behalf_of: str | None = None,
        transfer_group: str | None = None,
        receipt_email: str | None = None,
        statement_descriptor_suffix: str | None = None,
    ) -> dict[str, Any]:
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency,
            "automatic_payment_methods": {"enabled": True},
            "metadata": metadata,
        }
        if application_fee_amount is not None:
            params["application_fee_amount"] = application_fee_amount
        if transfer_destination is not None:
            params["transfer_data"] = {"destination": transfer_destination}
        if on_behalf_of is not None:
            params["on_behalf_of"] = on_behalf_of
        if transfer_group is not None:
            params["transfer_group"] = transfer_group
        if receipt_email is not None:
            params["receipt_email"] = receipt_email
        if statement_descriptor_suffix is not None:
            params["statement_descriptor_suffix"] = statement_descriptor_suffix
        intent = await self._call(
            self._client.v1.payment_intents.create_async(
                params=params,
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            )
        )
        return intent.to_dict()

    async def cancel_payment_intent(
        self,
        intent_id: str,
        *,
        idempotency_key: str,
        stripe_account: str | None = None,
        reason: str = "abandoned",  # or "requested_by_customer"
    ) -> dict[str, Any]:
        intent = await self._call(
            self._client.v1.payment_intents.cancel_async(
                intent_id,
                params={"cancellation_reason": reason},
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            )
        )
        return intent.to_dict()

    async def retrieve_payment_intent(
        self, intent_id: str, *, stripe_account: str | None = None
    ) -> dict[str, Any]:
        """The intent with `latest_charge` expanded (charge id, destination transfer id)."""
        intent = await self._call(
            self._client.v1.payment_intents.retrieve_async(
                intent_id,
                params={"expand": ["latest_charge"]},
                options={"stripe_account": stripe_account},
            )
        )
        return intent.to_dict()

    async def create_checkout_session(
        self,
        *,
        currency: str,
        line_items: Sequence[tuple[str, int, int]],  # (name, unit_amount, quantity)
        client_reference_id: str,
        metadata: dict[str, str],
        success_url: str,
        cancel_url: str,
        expires_at: int,
        idempotency_key: str,
        customer_email: str | None = None,
        stripe_account: str | None = None,
        application_fee_amount: int | None = None,
        transfer_destination: str | None = None,
        on_behalf_of: str | None = None,
        transfer_group: str | None = None,
        statement_descriptor_suffix: str | None = None,
    ) -> dict[str, Any]:
        intent_data: stripe.params.checkout.SessionCreateParamsPaymentIntentData = {
            "metadata": metadata
        }
        if application_fee_amount is not None:
            intent_data["application_fee_amount"] = application_fee_amount
        if transfer_destination is not None:
            intent_data["transfer_data"] = {"destination": transfer_destination}
        if on_behalf_of is not None:
            intent_data["on_behalf_of"] = on_behalf_of
        if transfer_group is not None:
            intent_data["transfer_group"] = transfer_group
        if statement_descriptor_suffix is not None:
            intent_data["statement_descriptor_suffix"] = statement_descriptor_suffix
        params: stripe.params.checkout.SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": quantity,
                    "price_data": {
                        "currency": currency,
                        "unit_amount": unit_amount,
                        "product_data": {"name": name},
                    },
                }
                for name, unit_amount, quantity in line_items
            ],
            "payment_intent_data": intent_data,
            "client_reference_id": client_reference_id,
            "metadata": metadata,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": expires_at,
        }
        if customer_email is not None:
            params["customer_email"] = customer_email
        session = await self._call(
            self._client.v1.checkout.sessions.create_async(
                params=params,
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            )
        )
        return session.to_dict()

    async def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str, stripe_account: str | None = None
    ) -> dict[str, Any]:
        session = await self._call(
            self._client.v1.checkout.sessions.expire_async(
                session_id,
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            )
        )
        return session.to_dict()

    # --- after the payment: transfers, reversals, refunds ------------------------------------
    # Plain JSON answers (`to_dict()`). Keys come from our rows: `transfer:<id>`, `refund:<id>`,
    # `refund:<id>:reversal`, `dispute:<id>:reversal:<order id>`.

    async def create_transfer(
        self,
        *,
        amount: int,
        currency: str,
        destination: str,
        source_transaction: str | None,
        transfer_group: str | None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Separate charges & transfers: move a held vendor share to the connected account.
        `source_transaction` (the charge) lets it be made before the funds are available."""
        params: stripe.params.TransferCreateParams = {
            "amount": amount,
            "currency": currency,
            "destination": destination,
            "metadata": metadata,
        }
        if source_transaction is not None:
            params["source_transaction"] = source_transaction
        if transfer_group is not None:
            params["transfer_group"] = transfer_group
        transfer = await self._call(
            self._client.v1.transfers.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )
        return transfer.to_dict()

    async def create_transfer_reversal(
        self,
        transfer_id: str,
        *,
        amount: int,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Take (part of) a transfer back from the connected account."""
        params: stripe.params.TransferReversalCreateParams = {
            "amount": amount,
            "metadata": metadata,
        }
        reversal = await self._call(
            self._client.v1.transfers.reversals.create_async(
                transfer_id, params=params, options={"idempotency_key": idempotency_key}
            )
        )
        return reversal.to_dict()

    async def create_refund(
        self,
        *,
        payment_intent: str,
        amount: int,
        reason: str,
        metadata: dict[str, str],
        idempotency_key: str,
        reverse_transfer: bool | None = None,
        refund_application_fee: bool | None = None,
        stripe_account: str | None = None,
    ) -> dict[str, Any]:
        """Refund (part of) a PaymentIntent. Destination charges: `reverse_transfer` (+ fee flag);
        direct charges: on the connected account (`stripe_account`) with the fee flag."""
        params: stripe.params.RefundCreateParams = {
            "payment_intent": payment_intent,
            "amount": amount,
            "reason": cast(Any, reason),
            "metadata": metadata,
        }
        if reverse_transfer is not None:
            params["reverse_transfer"] = reverse_transfer
        if refund_application_fee is not None:
            params["refund_application_fee"] = refund_application_fee
        refund = await self._call(
            self._client.v1.refunds.create_async(
                params=params,
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            )
        )
        return refund.to_dict()

    # --- webhooks and reconciliation: events, webhook endpoints, retrieval --------------------
    # Signature verification is `verify_event` below (module level: it needs only the signing
    # secrets, so webhooks are verified even when STRIPE_SECRET_KEY is unset).

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        try:
            page = await self._client.v1.webhook_endpoints.list_async(params={"limit": 100})
            return [_webhook_endpoint(we) async for we in page.auto_paging_iter()]
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc

    async def create_webhook_endpoint(
        self,
        *,
        url: str,
        enabled_events: Sequence[str],
        connect: bool,
        description: str,
        metadata: dict[str, str],
    ) -> WebhookEndpoint:
        """Create an endpoint pinned to the SDK's API version. The answer is the only time Stripe
        shows the signing secret (`WebhookEndpoint.secret`)."""
        params = {
            "url": url,
            "enabled_events": list(enabled_events),
            "connect": connect,
            "api_version": STRIPE_API_VERSION,
            "description": description,
            "metadata": metadata,
        }
        key = f"webhook-endpoint:{_digest(params)}:create"
        try:
            we = await self._client.v1.webhook_endpoints.create_async(
                params=cast(stripe.params.WebhookEndpointCreateParams, params),
                options={"idempotency_key": key},
            )
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc
        return _webhook_endpoint(we)

    async def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        enabled_events: Sequence[str],
        description: str,
        metadata: dict[str, str],
    ) -> WebhookEndpoint:
        """Replace the subscribed events (and re-enable). `connect` and `api_version` cannot be
        changed by an update; Stripe keeps what the endpoint was created with."""
        params = {
            "enabled_events": list(enabled_events),
            "disabled": False,
            "description": description,
            "metadata": metadata,
        }
        key = f"webhook-endpoint:{endpoint_id}:update:{_digest(params)}"
        try:
            we = await self._client.v1.webhook_endpoints.update_async(
                endpoint_id,
                params=cast(stripe.params.WebhookEndpointUpdateParams, params),
                options={"idempotency_key": key},
            )
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc
        return _webhook_endpoint(we)

    async def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint (after its replacement was created: `stripe-webhooks --recreate`)."""
        await self._call(self._client.v1.webhook_endpoints.delete_async(endpoint_id))

    # --- reads for `reconcile`: Stripe's current state of each object we keep ----------------
    # `stripe_account` is the connected account the object lives on (direct charges, payouts,
    # the disputes of direct charges); None for the platform's own objects. Lists answer one
    # page of at most `limit` objects, newest first (Stripe's order): a run stays bounded.

    async def retrieve_refund(
        self, refund_id: str, *, stripe_account: str | None = None
    ) -> dict[str, Any]:
        refund = await self._call(
            self._client.v1.refunds.retrieve_async(
                refund_id, options={"stripe_account": stripe_account}
            )
        )
        return refund.to_dict()

    async def list_refunds(
        self, *, payment_intent: str, stripe_account: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: stripe.params.RefundListParams = {"payment_intent": payment_intent, "limit": limit}
        page = await self._call(
            self._client.v1.refunds.list_async(
                params=params, options={"stripe_account": stripe_account}
            )
        )
        return [refund.to_dict() for refund in page.data]

    async def retrieve_transfer(self, transfer_id: str) -> dict[str, Any]:
        """A transfer with its `reversals` (the first page, newest first)."""
        transfer = await self._call(self._client.v1.transfers.retrieve_async(transfer_id))
        return transfer.to_dict()

    async def list_transfers(
        self, *, transfer_group: str, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: stripe.params.TransferListParams = {
            "transfer_group": transfer_group,
            "limit": limit,
        }
        page = await self._call(self._client.v1.transfers.list_async(params=params))
        return [transfer.to_dict() for transfer in page.data]

    async def list_transfer_reversals(
        self, transfer_id: str, *, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: stripe.params.TransferListReversalsParams = {"limit": limit}
        page = await self._call(
            self._client.v1.transfers.reversals.list_async(transfer_id, params=params)
        )
        return [reversal.to_dict() for reversal in page.data]

    async def retrieve_checkout_session(
        self, session_id: str, *, stripe_account: str | None = None
    ) -> dict[str, Any]:
        session = await self._call(
            self._client.v1.checkout.sessions.retrieve_async(
                session_id, options={"stripe_account": stripe_account}
            )
        )
        return session.to_dict()

    async def retrieve_dispute(
        self, dispute_id: str, *, stripe_account: str | None = None
    ) -> dict[str, Any]:
        dispute = await self._call(
            self._client.v1.disputes.retrieve_async(
                dispute_id, options={"stripe_account": stripe_account}
            )
        )
        return dispute.to_dict()

    async def list_disputes(
        self, *, created_since: int, stripe_account: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: stripe.params.DisputeListParams = {
            "created": {"gte": created_since},
            "limit": limit,
        }
        page = await self._call(
            self._client.v1.disputes.list_async(
                params=params, options={"stripe_account": stripe_account}
            )
        )
        return [dispute.to_dict() for dispute in page.data]

    async def list_payouts(
        self, *, stripe_account: str, created_since: int, limit: int = 100
    ) -> list[dict[str, Any]]:
        """A connected account's payouts to its bank (read with `Stripe-Account`)."""
        params: stripe.params.PayoutListParams = {"created": {"gte": created_since}, "limit": limit}
        page = await self._call(
            self._client.v1.payouts.list_async(
                params=params, options={"stripe_account": stripe_account}
            )
        )
        return [payout.to_dict() for payout in page.data]


def _known_event_types() -> frozenset[str]:
    """Every event type the pinned SDK lets an endpoint subscribe to (its `Literal` list)."""
    annotation = stripe.params.WebhookEndpointCreateParams.__annotations__["enabled_events"]
    (literal,) = typing.get_args(annotation)
    return frozenset(str(t) for t in typing.get_args(literal) if t != "*")


STRIPE_EVENT_TYPES: frozenset[str] = _known_event_types()


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    url: str
    enabled_events: tuple[str, ...]
    status: str  # enabled | disabled
    api_version: str | None
    metadata: dict[str, str]
    secret: str | None  # only in the answer to a create


def _digest(params: dict[str, Any]) -> str:
    """Idempotency keys of endpoint writes: the same request (same parameters) is the same key."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]


def _webhook_endpoint(we: stripe.WebhookEndpoint) -> WebhookEndpoint:
    data = we.to_dict()
    return WebhookEndpoint(
        id=str(data["id"]),
        url=str(data.get("url") or ""),
        enabled_events=tuple(str(e) for e in data.get("enabled_events") or ()),
        status=str(data.get("status") or "enabled"),
        api_version=data.get("api_version"),
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
        secret=data.get("secret"),
    )


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
        raise InvalidSignature("The signature does not match the payload.") from None
    reason = "The signature does not match the payload."
    for secret in candidates:
        try:
            stripe.WebhookSignature.verify_header(text, signature_header, secret, tolerance)
        except stripe.SignatureVerificationError as exc:
            if "tolerance" in (exc.user_message or ""):
                reason = "The signature timestamp is outside the tolerance."
            elif "extract" in (exc.user_message or "") or "scheme" in (exc.user_message or ""):
                reason = "The Stripe-Signature header is malformed."
            continue
        break
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
