"""The simulator's state: every Stripe object it holds, as the JSON Stripe would answer, plus the
little it keeps that Stripe does not show (who owns an object, session line items, endpoint
secrets, balance entries, idempotency results). Plain dicts, so it serialises to one JSON file."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

# Stripe's `object` value → the attribute of `SimState` holding that kind.
KINDS: dict[str, str] = {
    "account": "accounts",
    "payment_intent": "payment_intents",
    "charge": "charges",
    "checkout.session": "checkout_sessions",
    "transfer": "transfers",
    "transfer_reversal": "transfer_reversals",
    "refund": "refunds",
    "application_fee": "application_fees",
    "fee_refund": "fee_refunds",
    "dispute": "disputes",
    "payout": "payouts",
    "webhook_endpoint": "webhook_endpoints",
    "event": "events",
}


@dataclass
class SimState:
    accounts: dict[str, Obj] = field(default_factory=dict)
    payment_intents: dict[str, Obj] = field(default_factory=dict)
    charges: dict[str, Obj] = field(default_factory=dict)
    checkout_sessions: dict[str, Obj] = field(default_factory=dict)
    transfers: dict[str, Obj] = field(default_factory=dict)
    transfer_reversals: dict[str, Obj] = field(default_factory=dict)
    refunds: dict[str, Obj] = field(default_factory=dict)
    application_fees: dict[str, Obj] = field(default_factory=dict)
    fee_refunds: dict[str, Obj] = field(default_factory=dict)
    disputes: dict[str, Obj] = field(default_factory=dict)
    payouts: dict[str, Obj] = field(default_factory=dict)
    webhook_endpoints: dict[str, Obj] = field(default_factory=dict)
    events: dict[str, Obj] = field(default_factory=dict)  # insertion order = emission order
    # Not visible through Stripe's API:
    owner: dict[str, str | None] = field(default_factory=dict)  # id → connected account or None
    account_links: dict[str, Obj] = field(default_factory=dict)  # token → link and its use
    private: dict[str, Obj] = field(default_factory=dict)  # id → data Stripe keeps to itself
    balance: list[Obj] = field(default_factory=list)  # {account, amount, currency, available_on}
    idempotency: dict[str, Obj] = field(default_factory=dict)  # scope:key → saved answer
    clock_offset: int = 0

    def table(self, kind: str) -> dict[str, Obj]:
        table: dict[str, Obj] = getattr(self, KINDS[kind])
        return table

    def find(self, object_id: str) -> Obj | None:
        for name in KINDS.values():
            table: dict[str, Obj] = getattr(self, name)
            if object_id in table:
                return table[object_id]
        return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SimState:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        """Write atomically (a crash never leaves half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)


class SimClock:
    """Stripe's clock as the simulator sees it: wall time plus an offset that `advance` moves
    (payouts, availability of funds and session expiry follow it). Signatures use wall time."""

    def __init__(self, state: SimState) -> None:
        self._state = state

    def now(self) -> int:
        return int(time.time()) + self._state.clock_offset

    @staticmethod
    def wall() -> int:
        return int(time.time())

    def advance(self, seconds: int) -> None:
        self._state.clock_offset += seconds
