"""A small stateful Stripe stand-in over real HTTP, for the process-kill suite.

It honours `Idempotency-Key` like Stripe: the first POST with a key creates the object, every later
POST with that key (on the same path) answers the same object again. It counts what it created,
so a test can assert that money moved once whatever the API did. It can also kill the API
process (`SIGKILL`) when a matching request arrives (the API committed its row, Stripe did
nothing) or right after answering it (Stripe acted, the API recorded nothing).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class KillRule:
    path: str  # a regular expression matched against the request path
    when: str  # "request": before acting; "response": after answering
    pid: int
    skip: int = 0  # matching requests let through before the one that kills


def _metadata(fields: dict[str, str]) -> dict[str, str]:
    return {k[len("metadata[") : -1]: v for k, v in fields.items() if k.startswith("metadata[")}


@dataclass
class StripeStandIn:
    created: Counter[str] = field(default_factory=Counter)  # object kind -> how many were made
    posts: list[tuple[str, str]] = field(default_factory=list)  # (path, idempotency key)
    kill: KillRule | None = None
    _replays: dict[tuple[str, str], bytes] = field(default_factory=dict)
    _intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fields = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                standin._post(self, self.path, self.headers.get("Idempotency-Key", ""), fields)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.created.clear()
            self.posts.clear()
            self.kill = None
            self._replays.clear()
            self._intents.clear()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def successful_posts(self, path: str) -> Counter[str]:
        """How many times each idempotency key was POSTed to paths matching `path`."""
        return Counter(k for p, k in self.posts if re.fullmatch(path, p))

    # --- the API ----------------------------------------------------------------------------

    def _post(
        self, http: BaseHTTPRequestHandler, path: str, key: str, fields: dict[str, str]
    ) -> None:
        with self._lock:
            rule = self.kill if self.kill and re.fullmatch(self.kill.path, path) else None
            if rule is not None and rule.skip > 0:
                rule.skip -= 1
                rule = None
            elif rule is not None:
                self.kill = None
            if rule is not None and rule.when == "request":
                os.kill(rule.pid, signal.SIGKILL)
                http.close_connection = True
                return
            body = self._replays.get((path, key)) if key else None
            if body is None:
                body = json.dumps(self._create(path, fields)).encode()
                if key:
                    self._replays[(path, key)] = body
            self.posts.append((path, key))
        http.send_response(200)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(body)))
        http.send_header("Request-Id", f"req_{len(self.posts)}")
        http.end_headers()
        http.wfile.write(body)
        http.wfile.flush()
        if rule is not None and rule.when == "response":
            os.kill(rule.pid, signal.SIGKILL)

    def _create(self, path: str, fields: dict[str, str]) -> dict[str, Any]:
        for pattern, make in self._routes():
            match = re.fullmatch(pattern, path)
            if match:
                return make(fields, *match.groups())
        raise AssertionError(f"the stand-in does not know POST {path}")

    def _routes(self) -> list[tuple[str, Callable[..., dict[str, Any]]]]:
        return [
            (r"/v1/payment_intents", self._payment_intent),
            (r"/v1/payment_intents/([^/]+)/cancel", self._cancel_intent),
            (r"/v1/refunds", self._refund),
            (r"/v1/transfers", self._transfer),
            (r"/v1/checkout/sessions", self._checkout_session),
        ]

    def _new_id(self, prefix: str, kind: str) -> str:
        self.created[kind] += 1
        return f"{prefix}_standin{uuid.uuid4().hex[:16]}"

    def _payment_intent(self, fields: dict[str, str]) -> dict[str, Any]:
        pid = self._new_id("pi", "payment_intent")
        intent = {
            "id": pid,
            "object": "payment_intent",
            "amount": int(fields["amount"]),
            "currency": fields["currency"],
            "status": "requires_payment_method",
            "client_secret": f"{pid}_secret_standin",
            "metadata": _metadata(fields),
            "latest_charge": None,
            "last_payment_error": None,
            "livemode": False,
            "created": 1793000000,
        }
        self._intents[pid] = intent
        return intent

    def _cancel_intent(self, fields: dict[str, str], intent_id: str) -> dict[str, Any]:
        self.created["payment_intent_cancel"] += 1
        intent = self._intents.get(intent_id) or {
            "id": intent_id,
            "object": "payment_intent",
            "amount": 0,
            "currency": "usd",
            "metadata": {},
            "livemode": False,
            "created": 1793000000,
        }
        intent.update(status="canceled", cancellation_reason=fields.get("cancellation_reason"))
        return intent

    def _refund(self, fields: dict[str, str]) -> dict[str, Any]:
        return {
            "id": self._new_id("re", "refund"),
            "object": "refund",
            "amount": int(fields["amount"]),
            "currency": "usd",
            "charge": None,
            "payment_intent": fields.get("payment_intent"),
            "metadata": _metadata(fields),
            "reason": fields.get("reason"),
            "status": "succeeded",
            "failure_reason": None,
            "transfer_reversal": None,
            "created": 1793000800,
        }

    def _transfer(self, fields: dict[str, str]) -> dict[str, Any]:
        return {
            "id": self._new_id("tr", "transfer"),
            "object": "transfer",
            "amount": int(fields["amount"]),
            "amount_reversed": 0,
            "currency": fields["currency"],
            "destination": fields["destination"],
            "source_transaction": fields.get("source_transaction"),
            "transfer_group": fields.get("transfer_group"),
            "metadata": _metadata(fields),
            "reversed": False,
            "created": 1793000200,
            "livemode": False,
        }

    def _checkout_session(self, fields: dict[str, str]) -> dict[str, Any]:
        sid = self._new_id("cs_test", "checkout_session")
        return {
            "id": sid,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": None,
            "client_reference_id": fields.get("client_reference_id"),
            "expires_at": int(fields["expires_at"]),
            "metadata": _metadata(fields),
            "url": f"https://checkout.stripe.com/c/pay/{sid}",
        }
