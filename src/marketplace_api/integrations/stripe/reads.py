"""The reads of `reconcile`: Stripe's current state of each object we keep.

`stripe_account` is the connected account the object lives on (direct charges, payouts, the
disputes of direct charges); None for the platform's own objects. Lists answer one page of at
most `limit` objects, newest first (Stripe's order): a run stays bounded.
"""

from __future__ import annotations

import stripe

from marketplace_api.integrations.stripe.calls import StripeCalls
from marketplace_api.integrations.stripe.objects import (
    CheckoutSession,
    Dispute,
    Payout,
    Refund,
    Transfer,
    TransferReversal,
)


class ReconcileReads(StripeCalls):
    """Retrieve one object, or list the objects of a PaymentIntent, group or account."""

    async def retrieve_refund(self, refund_id: str, *, stripe_account: str | None = None) -> Refund:
        return await self._answer(
            Refund,
            self._client.v1.refunds.retrieve_async(
                refund_id, options={"stripe_account": stripe_account}
            ),
        )

    async def list_refunds(
        self, *, payment_intent: str, stripe_account: str | None = None, limit: int = 100
    ) -> list[Refund]:
        params: stripe.params.RefundListParams = {"payment_intent": payment_intent, "limit": limit}
        return await self._page(
            Refund,
            self._client.v1.refunds.list_async(
                params=params, options={"stripe_account": stripe_account}
            ),
        )

    async def retrieve_transfer(self, transfer_id: str) -> Transfer:
        """A transfer with its `reversals` (the first page, newest first)."""
        return await self._answer(Transfer, self._client.v1.transfers.retrieve_async(transfer_id))

    async def list_transfers(self, *, transfer_group: str, limit: int = 100) -> list[Transfer]:
        params: stripe.params.TransferListParams = {
            "transfer_group": transfer_group,
            "limit": limit,
        }
        return await self._page(Transfer, self._client.v1.transfers.list_async(params=params))

    async def list_transfer_reversals(
        self, transfer_id: str, *, limit: int = 100
    ) -> list[TransferReversal]:
        params: stripe.params.TransferListReversalsParams = {"limit": limit}
        return await self._page(
            TransferReversal,
            self._client.v1.transfers.reversals.list_async(transfer_id, params=params),
        )

    async def retrieve_checkout_session(
        self, session_id: str, *, stripe_account: str | None = None
    ) -> CheckoutSession:
        return await self._answer(
            CheckoutSession,
            self._client.v1.checkout.sessions.retrieve_async(
                session_id, options={"stripe_account": stripe_account}
            ),
        )

    async def retrieve_dispute(
        self, dispute_id: str, *, stripe_account: str | None = None
    ) -> Dispute:
        return await self._answer(
            Dispute,
            self._client.v1.disputes.retrieve_async(
                dispute_id, options={"stripe_account": stripe_account}
            ),
        )

    async def list_disputes(
        self, *, created_since: int, stripe_account: str | None = None, limit: int = 100
    ) -> list[Dispute]:
        params: stripe.params.DisputeListParams = {
            "created": {"gte": created_since},
            "limit": limit,
        }
        return await self._page(
            Dispute,
            self._client.v1.disputes.list_async(
                params=params, options={"stripe_account": stripe_account}
            ),
        )

    async def list_payouts(
        self, *, stripe_account: str, created_since: int, limit: int = 100
    ) -> list[Payout]:
        """A connected account's payouts to its bank (read with `Stripe-Account`)."""
        params: stripe.params.PayoutListParams = {"created": {"gte": created_since}, "limit": limit}
        return await self._page(
            Payout,
            self._client.v1.payouts.list_async(
                params=params, options={"stripe_account": stripe_account}
            ),
        )
