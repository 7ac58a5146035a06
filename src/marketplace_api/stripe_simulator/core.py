"""`StripeSimulator`: the state, the clock, ids, balances and event emission, and the one entry
point `handle(httpx.Request) -> httpx.Response` (see `http.py`). Operations live in `accounts.py`,
`payments.py`, `movements.py` and `endpoints.py`; test helpers are methods here.

Every operation is synchronous and never awaits, so each request is atomic even when many run
concurrently on one event loop.
"""

from __future__ import annotations

import copy
import json
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from marketplace_api.integrations.stripe import STRIPE_API_VERSION
from marketplace_api.stripe_simulator.errors import no_such
from marketplace_api.stripe_simulator.events import DeliverFn, Delivery, subscribes
from marketplace_api.stripe_simulator.state import KINDS, Obj, SimClock, SimState

API_VERSION = STRIPE_API_VERSION  # the version the service's client pins
DAY = 86_400
# Funds of a charge become available this long after it (Stripe's usual test-mode delay).
AVAILABILITY_DELAY = 2 * DAY
_ALPHABET = string.ascii_letters + string.digits
PLATFORM = "platform"
_T = TypeVar("_T")  # the balance key of the platform's own account


class StripeSimulator:
    """A stateful, in-memory model of the Stripe Connect API this service uses.

    `public_url`: where hosted-page stand-ins are served (account links, Checkout URLs point
    there). `deliver`: called with each signed `Delivery` (dev: post it in the background); when
    None, deliveries wait in `pending` for the test to take (`take_deliveries()`). `seed` makes
    ids reproducible. `state_file`: saved after every change, loaded when it exists.
    """

    def __init__(
        self,
        *,
        public_url: str = "http://127.0.0.1:8000",
        deliver: DeliverFn | None = None,
        seed: int | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.state_file = state_file
        if state_file is not None and state_file.exists():
            self.state = SimState.from_json(state_file.read_text(encoding="utf-8"))
        else:
            self.state = SimState()
        self.clock = SimClock(self.state)
        self.deliver = deliver
        self.pending: list[Delivery] = []
        # Seeded: reproducible ids for tests. Unseeded: the OS's generator (signing secrets).
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()  # noqa: S311
        self._listeners: list[Callable[[], None]] = []

    # --- the HTTP entry ---------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one Stripe API request (a respx side effect, or an httpx MockTransport)."""
        from marketplace_api.stripe_simulator.http import handle_request

        return handle_request(self, request)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self.handle(request)

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport answering every request from this simulator (no network)."""
        return httpx.MockTransport(self.handle_async)

    def changed(self) -> None:
        """Called after each state change: persist, if a state file is set."""
        if self.state_file is not None:
            self.state.save(self.state_file)
        for listener in self._listeners:
            listener()

    # --- ids, objects, lookups --------------------------------------------------------------

    def new_id(self, prefix: str, length: int = 24) -> str:
        return f"{prefix}_{''.join(self._rng.choice(_ALPHABET) for _ in range(length))}"

    def now(self) -> int:
        return self.clock.now()

    def store(self, obj: Obj, owner: str | None = None) -> Obj:
        self.state.table(obj["object"])[obj["id"]] = obj
        self.state.owner[obj["id"]] = owner
        return obj

    def get(self, kind: str, object_id: str, scope: str | None, param: str = "id") -> Obj:
        """The object, if it exists in this scope (platform, or the `Stripe-Account`)."""
        obj = self.state.table(kind).get(object_id)
        if obj is None or self.state.owner.get(object_id) != scope:
            raise no_such(kind.replace("_", " ").replace(".", " "), object_id, param)
        return obj

    def private(self, object_id: str) -> Obj:
        return self.state.private.setdefault(object_id, {})

    @staticmethod
    def list_object(url: str, data: list[Obj]) -> Obj:
        return {"object": "list", "data": data, "has_more": False, "url": url}

    # --- balances ---------------------------------------------------------------------------

    def credit(
        self,
        account: str | None,
        amount: int,
        currency: str,
        *,
        source: str,
        delay: int = 0,
        like: str | None = None,
    ) -> None:
        """A balance movement (negative: a debit) on the platform (None) or an account, available
        after `delay` seconds, or when the funds of `like` (an earlier movement's source) are:
        moving funds that are still pending moves pending funds."""
        available_on = self.now() + delay
        if like is not None:
            available_on = max(
                [e["available_on"] for e in self.state.balance if e["source"] == like]
                or [available_on]
            )
        self.state.balance.append(
            {
                "account": account or PLATFORM,
                "amount": amount,
                "currency": currency,
                "available_on": available_on,
                "source": source,
            }
        )

    def balances(self, account: str | None) -> dict[str, dict[str, int]]:
        """`{currency: {"available": n, "pending": n}}` at the simulator's current time."""
        key, now = account or PLATFORM, self.now()
        out: dict[str, dict[str, int]] = {}
        for entry in self.state.balance:
            if entry["account"] != key:
                continue
            bucket = out.setdefault(entry["currency"], {"available": 0, "pending": 0})
            if entry["available_on"] <= now:
                bucket["available"] += entry["amount"]
            else:
                bucket["pending"] += entry["amount"]
        return out

    # --- events -----------------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        obj: Obj,
        *,
        account: str | None = None,
        previous_attributes: Obj | None = None,
        request: tuple[str | None, str | None] = (None, None),
    ) -> Obj:
        """Record an event (a snapshot of `obj` now) and queue one delivery per subscribed
        endpoint. `account` set = a Connect event (about a connected account)."""
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        event: Obj = {
            "id": self.new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": request[0], "idempotency_key": request[1]},
            "type": event_type,
        }
        if account is not None:
            event["account"] = account
        targets = [
            we
            for we in self.state.webhook_endpoints.values()
            if subscribes(
                we, bool(self.private(we["id"]).get("connect")), account is not None, event_type
            )
        ]
        event["pending_webhooks"] = len(targets)
        self.state.events[event["id"]] = event
        self.state.owner[event["id"]] = account
        for we in targets:
            body = dict(event, api_version=we.get("api_version") or API_VERSION)
            delivery = Delivery(
                endpoint_id=we["id"],
                url=we["url"],
                secret=self.private(we["id"])["secret"],
                event_id=event["id"],
                type=event_type,
                account=account,
                payload=json.dumps(body, separators=(",", ":")).encode(),
            )
            if self.deliver is None:
                self.pending.append(delivery)
            else:
                self.deliver(delivery)
        return event

    def add_webhook_endpoint(
        self, url: str, *, connect: bool, enabled_events: list[str] | None = None
    ) -> str:
        """Register an endpoint (all events by default) and return its signing secret."""
        from marketplace_api.stripe_simulator import endpoints
        from marketplace_api.stripe_simulator.context import RequestContext

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

    # --- expansion --------------------------------------------------------------------------

    def expand(self, obj: Obj, paths: list[str], scope: str | None) -> Obj:
        """Replace id fields named by `expand` (dotted paths, `data.` for lists) by objects."""
        out = copy.deepcopy(obj)
        for path in paths:
            self._expand_path(out, path.split("."), scope)
        return out

    def _expand_path(self, node: Any, parts: list[str], scope: str | None) -> None:
        if not parts or not isinstance(node, dict):
            return
        head, rest = parts[0], parts[1:]
        if head == "data" and isinstance(node.get("data"), list):
            for item in node["data"]:
                self._expand_path(item, rest, scope)
            return
        value = node.get(head)
        if isinstance(value, str):
            found = self.state.find(value)
            if found is not None:
                node[head] = value = copy.deepcopy(found)
        if rest:
            self._expand_path(value, rest, scope)

    # --- test helpers (also over HTTP under /_simulator/, see http.py) -----------------------

    def complete_onboarding(self, account_id: str) -> Obj:
        from marketplace_api.stripe_simulator import accounts

        return self._mutate(lambda: accounts.complete_onboarding(self, account_id))

    def update_account(self, account_id: str, **changes: Any) -> Obj:
        """Change an account as Stripe would (`charges_enabled`, `payouts_enabled`,
        `disabled_reason`, `currently_due`, `past_due`, `capabilities`) → `account.updated`."""
        from marketplace_api.stripe_simulator import accounts

        return self._mutate(lambda: accounts.change_account(self, account_id, **changes))

    def deauthorize(self, account_id: str) -> Obj:
        from marketplace_api.stripe_simulator import accounts

        return self._mutate(lambda: accounts.deauthorize(self, account_id))

    def confirm_payment_intent(self, intent_id: str, payment_method: str = "pm_card_visa") -> Obj:
        """Confirm as Stripe.js would with a test payment method (`pm_card_visa`,
        `pm_card_chargeDeclined`, `pm_card_createDispute`, ...). A decline returns the intent
        back in `requires_payment_method` (no exception), as a helper is not an API call."""
        from marketplace_api.stripe_simulator import payments

        return self._mutate(lambda: payments.confirm_quietly(self, intent_id, payment_method))

    def pay_checkout_session(self, session_id: str, payment_method: str = "pm_card_visa") -> Obj:
        """Pay on the hosted page: success completes the session; a decline leaves it open."""
        from marketplace_api.stripe_simulator import payments

        return self._mutate(lambda: payments.pay_session(self, session_id, payment_method))

    def open_dispute(
        self, charge_id: str, *, reason: str = "fraudulent", amount: int | None = None
    ) -> Obj:
        from marketplace_api.stripe_simulator import movements

        return self._mutate(lambda: movements.open_dispute(self, charge_id, reason, amount))

    def close_dispute(self, dispute_id: str, *, won: bool) -> Obj:
        from marketplace_api.stripe_simulator import movements

        return self._mutate(lambda: movements.close_dispute(self, dispute_id, won))

    def fail_refund(self, refund_id: str, reason: str = "expired_or_canceled_card") -> Obj:
        from marketplace_api.stripe_simulator import movements

        return self._mutate(lambda: movements.fail_refund(self, refund_id, reason))

    def advance_time(self, seconds: int) -> list[Obj]:
        """Move Stripe's clock: funds become available, open Checkout Sessions past
        `expires_at` expire, scheduled payouts are made and later paid. Answers the events."""
        from marketplace_api.stripe_simulator import movements

        def run() -> list[Obj]:
            before = len(self.state.events)
            self.clock.advance(seconds)
            movements.tick(self)
            return list(self.state.events.values())[before:]

        return self._mutate(run)

    def tick(self) -> None:
        """Apply what is due at the current time (expiries, payouts) without moving the clock."""
        self.advance_time(0)

    def fail_payout(self, payout_id: str, code: str = "account_closed") -> Obj:
        from marketplace_api.stripe_simulator import movements

        return self._mutate(lambda: movements.fail_payout(self, payout_id, code))

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
