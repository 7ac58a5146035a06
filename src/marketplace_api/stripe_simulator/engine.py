"""`SimEngine`: what every simulated operation works with — the state, the clock, ids, object
lookups, balances, event emission and `expand`. Operations (`accounts.py`, `payments.py`,
`charges.py`, `checkout.py`, `transfers.py`, `refunds.py`, `disputes.py`, `payouts.py`,
`endpoints.py`) take an engine; `StripeSimulator` (`core.py`) builds on it with the HTTP entry and
the test helpers, so operations never import the class that imports them.

Every operation is synchronous and never awaits, so each request is atomic even when many run
concurrently on one event loop.
"""

from __future__ import annotations

import copy
import json
import random
import string
from pathlib import Path
from typing import Any

from marketplace_api.integrations.stripe import STRIPE_API_VERSION
from marketplace_api.stripe_simulator.errors import no_such
from marketplace_api.stripe_simulator.events import DeliverFn, Delivery, subscribes
from marketplace_api.stripe_simulator.state import Obj, SimClock, SimState

API_VERSION = STRIPE_API_VERSION  # the version the service's client pins
DAY = 86_400
# Funds of a charge become available this long after it (Stripe's usual test-mode delay).
AVAILABILITY_DELAY = 2 * DAY
_ALPHABET = string.ascii_letters + string.digits
PLATFORM = "platform"  # the balance key of the platform's own account
# `event.request` of the events an operation causes: (request id, idempotency key).
EventRequest = tuple[str | None, str | None]
NO_REQUEST: EventRequest = (None, None)


class SimEngine:
    """The state of a simulated Stripe account and the primitives operations are made of.

    `public_url`: where hosted-page stand-ins are served (account links, Checkout URLs point
    there). `deliver`: called with each signed `Delivery` (dev: post it in the background); when
    None, deliveries wait in `pending` for the test to take. `seed` makes ids reproducible.
    `state_file`: saved after every change, loaded when it exists.
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

    def changed(self) -> None:
        """Called after each state change: persist, if a state file is set."""
        if self.state_file is not None:
            self.state.save(self.state_file)

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

    def money_object(
        self, prefix: str, kind: str, amount: int, currency: str, **fields: Any
    ) -> Obj:
        """A new object that moves money (a transfer, a reversal, a refund, a fee refund): its
        id, the balance transaction it makes and its creation time, then `fields`."""
        return {
            "id": self.new_id(prefix),
            "object": kind,
            "amount": amount,
            "balance_transaction": self.new_id("txn"),
            "created": self.now(),
            "currency": currency,
            **fields,
        }

    def listed(self, kind: str, scope: str | None, p: Obj, *filters: str) -> list[Obj]:
        """The objects of `kind` in `scope` whose fields match the list filters named in
        `filters` that the request sets in `p` (a filter it leaves out matches everything)."""
        return [
            obj
            for obj in self.state.table(kind).values()
            if self.state.owner[obj["id"]] == scope
            and all(p.get(name) in (None, obj[name]) for name in filters)
        ]

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
        request: EventRequest = NO_REQUEST,
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
        if head == "refunds" and node.get("object") == "charge":
            refunds = [self.state.refunds[r] for r in self.private(node["id"]).get("refunds", [])]
            url = f"/v1/charges/{node['id']}/refunds"
            node[head] = value = self.list_object(url, copy.deepcopy(refunds))
        elif isinstance(value, str):
            found = self.state.find(value)
            if found is not None:
                node[head] = value = copy.deepcopy(found)
        if rest:
            self._expand_path(value, rest, scope)
