"""`StripeSimulator`: the engine (`engine.py`) with its one HTTP entry point
`handle(httpx.Request) -> httpx.Response` (see `http.py`) and the helpers tests and the hosted
pages drive it with. Each helper saves the state after it ran, as an API request does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from marketplace_api.stripe_simulator import accounts, disputes, endpoints, helpers, payments
from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.engine import (
    API_VERSION,
    AVAILABILITY_DELAY,
    DAY,
    PLATFORM,
    SimEngine,
)
from marketplace_api.stripe_simulator.events import Delivery
from marketplace_api.stripe_simulator.http import handle_request
from marketplace_api.stripe_simulator.payouts import fail_payout
from marketplace_api.stripe_simulator.refunds import fail_refund
from marketplace_api.stripe_simulator.state import KINDS, Obj

_T = TypeVar("_T")

__all__ = ["API_VERSION", "AVAILABILITY_DELAY", "DAY", "PLATFORM", "StripeSimulator"]


class StripeSimulator(SimEngine):
    """A stateful, in-memory model of the Stripe Connect API this service uses.

    `public_url`: where hosted-page stand-ins are served (account links, Checkout URLs point
    there). `deliver`: called with each signed `Delivery` (dev: post it in the background); when
    None, deliveries wait in `pending` for the test to take (`take_deliveries()`). `seed` makes
    ids reproducible. `state_file`: saved after every change, loaded when it exists.
    """

    # --- the HTTP entry ---------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one Stripe API request (a respx side effect, or an httpx MockTransport)."""
        return handle_request(self, request)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self.handle(request)

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport answering every request from this simulator (no network)."""
        return httpx.MockTransport(self.handle_async)

    # --- webhook endpoints and deliveries ---------------------------------------------------

    def add_webhook_endpoint(
        self, url: str, *, connect: bool, enabled_events: list[str] | None = None
    ) -> str:
        """Register an endpoint (all events by default) and return its signing secret."""
        created = endpoints.create_endpoint(
            self,
            RequestContext(None, False, None, self.new_id("req", 14)),
            {"url": url, "enabled_events": enabled_events or ["*"], "connect": connect},
        )
        self.changed()
        return str(created["secret"])

    def take_deliveries(self) -> list[Delivery]:
        """The deliveries queued since the last call (tests deliver them themselves)."""
        taken, self.pending = self.pending, []
        return taken

    async def deliver_pending(self, client: httpx.AsyncClient) -> list[httpx.Response]:
        """POST every queued delivery, in emission order, through `client` (for example the app
        through `httpx.ASGITransport`); answers the responses."""
        return [await delivery.post(client) for delivery in self.take_deliveries()]

    def events_of(self, event_type: str | None = None) -> list[Obj]:
        return [e for e in self.state.events.values() if event_type in (None, e["type"])]

    # --- test helpers (also over HTTP under /_simulator/, see helpers.py) --------------------

    def complete_onboarding(self, account_id: str) -> Obj:
        return self._mutate(lambda: accounts.complete_onboarding(self, account_id))

    def update_account(self, account_id: str, **changes: Any) -> Obj:
        """Change an account as Stripe would (`charges_enabled`, `payouts_enabled`,
        `disabled_reason`, `currently_due`, `past_due`, `capabilities`) → `account.updated`."""
        return self._mutate(lambda: accounts.change_account(self, account_id, **changes))

    def deauthorize(self, account_id: str) -> Obj:
        return self._mutate(lambda: accounts.deauthorize(self, account_id))

    def confirm_payment_intent(self, intent_id: str, payment_method: str = "pm_card_visa") -> Obj:
        """Confirm as Stripe.js would with a test payment method (`pm_card_visa`,
        `pm_card_chargeDeclined`, `pm_card_createDispute`, ...). A decline returns the intent
        back in `requires_payment_method` (no exception), as a helper is not an API call."""
        return self._mutate(lambda: payments.confirm_quietly(self, intent_id, payment_method))

    def pay_checkout_session(self, session_id: str, payment_method: str = "pm_card_visa") -> Obj:
        """Pay on the hosted page: success completes the session; a decline leaves it open."""
        return self._mutate(lambda: helpers.pay_checkout_session(self, session_id, payment_method))

    def open_dispute(
        self, charge_id: str, *, reason: str = "fraudulent", amount: int | None = None
    ) -> Obj:
        return self._mutate(lambda: disputes.open_dispute(self, charge_id, reason, amount))

    def close_dispute(self, dispute_id: str, *, won: bool) -> Obj:
        return self._mutate(lambda: disputes.close_dispute(self, dispute_id, won))

    def fail_refund(self, refund_id: str, reason: str = helpers.REFUND_FAILURE) -> Obj:
        return self._mutate(lambda: fail_refund(self, refund_id, reason))

    def advance_time(self, seconds: int) -> list[Obj]:
        """Move Stripe's clock: funds become available, open Checkout Sessions past
        `expires_at` expire, scheduled payouts are made and later paid. Answers the events."""
        return self._mutate(lambda: helpers.advance_time(self, seconds))

    def tick(self) -> None:
        """Apply what is due at the current time (expiries, payouts) without moving the clock."""
        self.advance_time(0)

    def fail_payout(self, payout_id: str, code: str = helpers.PAYOUT_FAILURE) -> Obj:
        return self._mutate(lambda: fail_payout(self, payout_id, code))

    def _mutate(self, operation: Callable[[], _T]) -> _T:
        try:
            return operation()
        finally:
            self.changed()

    # --- reading state ----------------------------------------------------------------------

    def object(self, object_id: str) -> Obj:
        found = self.state.find(object_id)
        if found is None:
            raise KeyError(object_id)
        return found

    def objects(self, kind: str) -> list[Obj]:
        if kind not in KINDS:
            raise KeyError(kind)
        return list(self.state.table(kind).values())
