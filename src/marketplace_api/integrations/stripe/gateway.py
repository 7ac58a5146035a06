"""The one class that talks to Stripe.

Every call is async (`*_async` methods), goes through `StripeGateway._call` (timed, counted,
traced, Stripe's exceptions mapped to our problems), carries an idempotency key derived from our
own row when it is a POST, and puts our ids in `metadata` so Stripe objects lead back to our rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import typing
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import stripe
from opentelemetry.trace import SpanKind

from marketplace_api import tracing
from marketplace_api.integrations.stripe.client import STRIPE_API_VERSION
from marketplace_api.integrations.stripe.errors import StripeAnswerInvalid, map_stripe_error
from marketplace_api.integrations.stripe.objects import (
    Account,
    AccountLink,
    Balance,
    CheckoutSession,
    Dispute,
    LoginLink,
    PaymentIntent,
    Payout,
    Refund,
    StripeModel,
    StripeObjectInvalid,
    StripePart,
    Transfer,
    TransferReversal,
    parse_object,
    parse_part,
)
from marketplace_api.metrics import stripe_call

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_M = TypeVar("_M", bound=StripeModel)
_P = TypeVar("_P", bound=StripePart)


class StripeGateway:
    """Typed, async wrapper around an injected `stripe.StripeClient`.

    Domain issues add their operations here (accounts, payment intents, transfers, refunds...).
    Each method takes the idempotency key from the caller, who derives it from its own row.
    """

    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    async def _call(self, awaitable: Awaitable[_T], *, operation: str | None = None) -> _T:
        """Await one Stripe call; a Stripe exception leaves as our problem (`map_stripe_error`).

        Each call is timed and counted for /metrics by its SDK method, e.g. `PaymentIntent.create`,
        and, with traces on, is one span of that name holding our idempotency key and Stripe's
        request id (never parameters).
        """
        if operation is None:
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
    # Every method answers one of our typed objects (`objects.py`): no StripeObject leaves.

    async def create_express_account(
        self,
        *,
        country: str,
        email: str | None,
        business_name: str,
        product_description: str | None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> Account:
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
        return _parse(Account, account)

    async def create_account_link(
        self, account_id: str, *, refresh_url: str, return_url: str, idempotency_key: str
    ) -> AccountLink:
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
        return _parse_part(AccountLink, link)

    async def retrieve_account(self, account_id: str) -> Account:
        account = await self._call(self._client.v1.accounts.retrieve_async(account_id))
        return _parse(Account, account)

    async def create_login_link(self, account_id: str, *, idempotency_key: str) -> LoginLink:
        """An Express dashboard login URL (`url`); only for onboarded Express accounts."""
        link = await self._call(
            self._client.v1.accounts.login_links.create_async(
                account_id, options={"idempotency_key": idempotency_key}
            )
        )
        return _parse_part(LoginLink, link)

    async def retrieve_balance(self, account_id: str) -> Balance:
        """The connected account's balance (read with `Stripe-Account`)."""
        balance = await self._call(
            self._client.v1.balance.retrieve_async(options={"stripe_account": account_id})
        )
        return _parse_part(Balance, balance)

    async def update_payout_schedule(
        self,
        account_id: str,
        *,
        interval: str,
        delay_days: int | str | None,
        weekly_anchor: str | None,
        monthly_anchor: int | None,
        idempotency_key: str,
    ) -> Account:
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
        return _parse(Account, account)

    # --- payments (checkout): payment intents, checkout sessions -----------------------------
    # `stripe_account` is set for direct charges only.

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
    ) -> PaymentIntent:
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
        return _parse(PaymentIntent, intent)

    async def cancel_payment_intent(
        self,
        intent_id: str,
        *,
        idempotency_key: str,
        stripe_account: str | None = None,
        reason: str = "abandoned",  # or "requested_by_customer"
    ) -> PaymentIntent:
        intent = await self._call(
            self._client.v1.payment_intents.cancel_async(
                intent_id,
                params={"cancellation_reason": reason},
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            )
        )
        return _parse(PaymentIntent, intent)

    async def retrieve_payment_intent(
        self, intent_id: str, *, stripe_account: str | None = None
    ) -> PaymentIntent:
        """The intent with `latest_charge` expanded (charge id, destination transfer id)."""
        intent = await self._call(
            self._client.v1.payment_intents.retrieve_async(
                intent_id,
                params={"expand": ["latest_charge"]},
                options={"stripe_account": stripe_account},
            )
        )
        return _parse(PaymentIntent, intent)

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
    ) -> CheckoutSession:
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
        return _parse(CheckoutSession, session)

    async def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str, stripe_account: str | None = None
    ) -> CheckoutSession:
        session = await self._call(
            self._client.v1.checkout.sessions.expire_async(
                session_id,
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            )
        )
        return _parse(CheckoutSession, session)

    # --- after the payment: transfers, reversals, refunds ------------------------------------
    # Keys come from our rows: `transfer:<id>`, `refund:<id>`,
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
    ) -> Transfer:
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
        return _parse(Transfer, transfer)

    async def create_transfer_reversal(
        self,
        transfer_id: str,
        *,
        amount: int,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> TransferReversal:
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
        return _parse(TransferReversal, reversal)

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
    ) -> Refund:
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
        return _parse(Refund, refund)

    # --- webhook endpoints (signature verification is `webhooks.signature.verify_event`) -----

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        async def every_page() -> list[WebhookEndpoint]:
            page = await self._client.v1.webhook_endpoints.list_async(params={"limit": 100})
            return [_webhook_endpoint(we) async for we in page.auto_paging_iter()]

        return await self._call(every_page(), operation="WebhookEndpoint.list")

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
        we = await self._call(
            self._client.v1.webhook_endpoints.create_async(
                params=cast(stripe.params.WebhookEndpointCreateParams, params),
                options={"idempotency_key": key},
            )
        )
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
        we = await self._call(
            self._client.v1.webhook_endpoints.update_async(
                endpoint_id,
                params=cast(stripe.params.WebhookEndpointUpdateParams, params),
                options={"idempotency_key": key},
            )
        )
        return _webhook_endpoint(we)

    async def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint (after its replacement was created: `stripe-webhooks --recreate`)."""
        await self._call(self._client.v1.webhook_endpoints.delete_async(endpoint_id))

    # --- reads for `reconcile`: Stripe's current state of each object we keep ----------------
    # `stripe_account` is the connected account the object lives on (direct charges, payouts,
    # the disputes of direct charges); None for the platform's own objects. Lists answer one
    # page of at most `limit` objects, newest first (Stripe's order): a run stays bounded.

    async def retrieve_refund(self, refund_id: str, *, stripe_account: str | None = None) -> Refund:
        refund = await self._call(
            self._client.v1.refunds.retrieve_async(
                refund_id, options={"stripe_account": stripe_account}
            )
        )
        return _parse(Refund, refund)

    async def list_refunds(
        self, *, payment_intent: str, stripe_account: str | None = None, limit: int = 100
    ) -> list[Refund]:
        params: stripe.params.RefundListParams = {"payment_intent": payment_intent, "limit": limit}
        page = await self._call(
            self._client.v1.refunds.list_async(
                params=params, options={"stripe_account": stripe_account}
            )
        )
        return [_parse(Refund, item) for item in page.data]

    async def retrieve_transfer(self, transfer_id: str) -> Transfer:
        """A transfer with its `reversals` (the first page, newest first)."""
        transfer = await self._call(self._client.v1.transfers.retrieve_async(transfer_id))
        return _parse(Transfer, transfer)

    async def list_transfers(self, *, transfer_group: str, limit: int = 100) -> list[Transfer]:
        params: stripe.params.TransferListParams = {
            "transfer_group": transfer_group,
            "limit": limit,
        }
        page = await self._call(self._client.v1.transfers.list_async(params=params))
        return [_parse(Transfer, item) for item in page.data]

    async def list_transfer_reversals(
        self, transfer_id: str, *, limit: int = 100
    ) -> list[TransferReversal]:
        params: stripe.params.TransferListReversalsParams = {"limit": limit}
        page = await self._call(
            self._client.v1.transfers.reversals.list_async(transfer_id, params=params)
        )
        return [_parse(TransferReversal, item) for item in page.data]

    async def retrieve_checkout_session(
        self, session_id: str, *, stripe_account: str | None = None
    ) -> CheckoutSession:
        session = await self._call(
            self._client.v1.checkout.sessions.retrieve_async(
                session_id, options={"stripe_account": stripe_account}
            )
        )
        return _parse(CheckoutSession, session)

    async def retrieve_dispute(
        self, dispute_id: str, *, stripe_account: str | None = None
    ) -> Dispute:
        dispute = await self._call(
            self._client.v1.disputes.retrieve_async(
                dispute_id, options={"stripe_account": stripe_account}
            )
        )
        return _parse(Dispute, dispute)

    async def list_disputes(
        self, *, created_since: int, stripe_account: str | None = None, limit: int = 100
    ) -> list[Dispute]:
        params: stripe.params.DisputeListParams = {
            "created": {"gte": created_since},
            "limit": limit,
        }
        page = await self._call(
            self._client.v1.disputes.list_async(
                params=params, options={"stripe_account": stripe_account}
            )
        )
        return [_parse(Dispute, item) for item in page.data]

    async def list_payouts(
        self, *, stripe_account: str, created_since: int, limit: int = 100
    ) -> list[Payout]:
        """A connected account's payouts to its bank (read with `Stripe-Account`)."""
        params: stripe.params.PayoutListParams = {"created": {"gte": created_since}, "limit": limit}
        page = await self._call(
            self._client.v1.payouts.list_async(
                params=params, options={"stripe_account": stripe_account}
            )
        )
        return [_parse(Payout, item) for item in page.data]


def _parse(model: type[_M], answer: stripe.StripeObject) -> _M:
    """The SDK's answer as our model; one we cannot read is a transient problem, never a crash."""
    try:
        return parse_object(model, answer.to_dict())
    except StripeObjectInvalid as exc:
        raise _unreadable(exc) from None


def _parse_part(model: type[_P], answer: stripe.StripeObject) -> _P:
    try:
        return parse_part(model, answer.to_dict())
    except StripeObjectInvalid as exc:
        raise _unreadable(exc) from None


def _unreadable(exc: StripeObjectInvalid) -> StripeAnswerInvalid:
    logger.warning("stripe answered an object we cannot read", extra={"reason": str(exc)})
    return StripeAnswerInvalid(
        "Stripe's answer could not be read; it has been logged. Retry later with the same "
        "Idempotency-Key."
    )


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
