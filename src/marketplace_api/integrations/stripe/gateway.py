"""The one class that talks to Stripe.

Every call goes through `StripeCalls._call` (timed, counted, traced, errors mapped), carries an
idempotency key derived from our own row when it is a POST, puts our ids in `metadata` so Stripe
objects lead back to our rows, and answers one of our typed objects (`objects.py`). The reads of
`reconcile` and the webhook-endpoint calls live in their own modules (`reads`,
`webhook_endpoints`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import stripe

from marketplace_api.integrations.stripe.objects import (
    Account,
    AccountLink,
    Balance,
    CheckoutSession,
    LoginLink,
    PaymentIntent,
    Refund,
    Transfer,
    TransferReversal,
)
from marketplace_api.integrations.stripe.reads import ReconcileReads
from marketplace_api.integrations.stripe.webhook_endpoints import (
    STRIPE_EVENT_TYPES,
    WebhookEndpoint,
    WebhookEndpointCalls,
)

__all__ = ["STRIPE_EVENT_TYPES", "StripeGateway", "WebhookEndpoint"]


class StripeGateway(ReconcileReads, WebhookEndpointCalls):
    """Typed, async wrapper around an injected `stripe.StripeClient`.

    Each method takes the idempotency key from the caller, who derives it from its own row.
    """

    # --- connected accounts (vendors): accounts, account links, login links, balance ---------

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
        return await self._answer(
            Account,
            self._client.v1.accounts.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            ),
        )

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
        return await self._answer_part(
            AccountLink,
            self._client.v1.account_links.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            ),
        )

    async def retrieve_account(self, account_id: str) -> Account:
        return await self._answer(Account, self._client.v1.accounts.retrieve_async(account_id))

    async def create_login_link(self, account_id: str, *, idempotency_key: str) -> LoginLink:
        """An Express dashboard login URL (`url`); only for onboarded Express accounts."""
        return await self._answer_part(
            LoginLink,
            self._client.v1.accounts.login_links.create_async(
                account_id, options={"idempotency_key": idempotency_key}
            ),
        )

    async def retrieve_balance(self, account_id: str) -> Balance:
        """The connected account's balance (read with `Stripe-Account`)."""
        return await self._answer_part(
            Balance,
            (self._client.v1.balance.retrieve_async(options={"stripe_account": account_id})),
        )

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
        return await self._answer(
            Account,
            self._client.v1.accounts.update_async(
                account_id, params=params, options={"idempotency_key": idempotency_key}
            ),
        )

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
        _route_charge(
            params,
            application_fee_amount=application_fee_amount,
            transfer_destination=transfer_destination,
            on_behalf_of=on_behalf_of,
            transfer_group=transfer_group,
        )
        if receipt_email is not None:
            params["receipt_email"] = receipt_email
        if statement_descriptor_suffix is not None:
            params["statement_descriptor_suffix"] = statement_descriptor_suffix
        return await self._answer(
            PaymentIntent,
            self._client.v1.payment_intents.create_async(
                params=params,
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            ),
        )

    async def cancel_payment_intent(
        self,
        intent_id: str,
        *,
        idempotency_key: str,
        stripe_account: str | None = None,
        reason: str = "abandoned",  # or "requested_by_customer"
    ) -> PaymentIntent:
        return await self._answer(
            PaymentIntent,
            self._client.v1.payment_intents.cancel_async(
                intent_id,
                params={"cancellation_reason": reason},
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            ),
        )

    async def retrieve_payment_intent(
        self, intent_id: str, *, stripe_account: str | None = None
    ) -> PaymentIntent:
        """The intent with `latest_charge` expanded (charge id, destination transfer id)."""
        return await self._answer(
            PaymentIntent,
            self._client.v1.payment_intents.retrieve_async(
                intent_id,
                params={"expand": ["latest_charge"]},
                options={"stripe_account": stripe_account},
            ),
        )

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
        _route_charge(
            intent_data,
            application_fee_amount=application_fee_amount,
            transfer_destination=transfer_destination,
            on_behalf_of=on_behalf_of,
            transfer_group=transfer_group,
        )
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
        return await self._answer(
            CheckoutSession,
            self._client.v1.checkout.sessions.create_async(
                params=params,
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            ),
        )

    async def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str, stripe_account: str | None = None
    ) -> CheckoutSession:
        return await self._answer(
            CheckoutSession,
            self._client.v1.checkout.sessions.expire_async(
                session_id,
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            ),
        )

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
        return await self._answer(
            Transfer,
            self._client.v1.transfers.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            ),
        )

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
        return await self._answer(
            TransferReversal,
            self._client.v1.transfers.reversals.create_async(
                transfer_id, params=params, options={"idempotency_key": idempotency_key}
            ),
        )

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
        return await self._answer(
            Refund,
            self._client.v1.refunds.create_async(
                params=params,
                options={"idempotency_key": idempotency_key, "stripe_account": stripe_account},
            ),
        )


def _route_charge(
    params: stripe.params.PaymentIntentCreateParams
    | stripe.params.checkout.SessionCreateParamsPaymentIntentData,
    *,
    application_fee_amount: int | None,
    transfer_destination: str | None,
    on_behalf_of: str | None,
    transfer_group: str | None,
) -> None:
    """Where a PaymentIntent's money goes (the fee, the destination, the settlement merchant, the
    transfer group): the same fields whether we create the intent or a Checkout Session creates
    it from `payment_intent_data`. Unset ones are not sent."""
    if application_fee_amount is not None:
        params["application_fee_amount"] = application_fee_amount
    if transfer_destination is not None:
        params["transfer_data"] = {"destination": transfer_destination}
    if on_behalf_of is not None:
        params["on_behalf_of"] = on_behalf_of
    if transfer_group is not None:
        params["transfer_group"] = transfer_group
