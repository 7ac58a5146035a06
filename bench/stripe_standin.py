"""A local Stripe stand-in for benchmarks: answers Stripe-shaped JSON after a fixed latency.

Only what the service calls under load is modelled (PaymentIntents, Checkout Sessions, transfers,
refunds, accounts); anything else gets a Stripe-shaped 404. Responses are replayed per
Idempotency-Key, as Stripe does. Run: `python bench/stripe_standin.py --port 12111 --latency 0.2`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

Scope = dict[str, Any]


def _nest(form: list[tuple[str, str]]) -> dict[str, Any]:
    """`metadata[payment_id]=x` → {"metadata": {"payment_id": "x"}} (one level is enough here)."""
    out: dict[str, Any] = {}
    for key, value in form:
        if "[" in key:
            head, rest = key.split("[", 1)
            out.setdefault(head, {})[rest.split("]", 1)[0]] = value
        else:
            out[key] = value
    return out


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def payment_intent(params: dict[str, Any]) -> dict[str, Any]:
    pi_id = _id("pi")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": int(params.get("amount", 0)),
        "amount_received": 0,
        "currency": params.get("currency", "usd"),
        "status": "requires_payment_method",
        "client_secret": f"{pi_id}_secret_{secrets.token_hex(8)}",
        "metadata": params.get("metadata", {}),
        "application_fee_amount": int(params["application_fee_amount"])
        if "application_fee_amount" in params
        else None,
        "transfer_data": params.get("transfer_data"),
        "transfer_group": params.get("transfer_group"),
        "latest_charge": None,
        "last_payment_error": None,
        "livemode": False,
        "created": int(time.time()),
    }


def generic(prefix: str, obj: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"id": _id(prefix), "object": obj, "created": int(time.time()), **params}


ROUTES = {
    "/v1/payment_intents": lambda p: payment_intent(p),
    "/v1/checkout/sessions": lambda p: generic(
        "cs", "checkout.session", {"url": "https://checkout.stripe.test/x", **p}
    ),
    "/v1/transfers": lambda p: generic("tr", "transfer", p),
    "/v1/refunds": lambda p: generic("re", "refund", {"status": "succeeded", **p}),
    "/v1/accounts": lambda p: generic("acct", "account", p),
}


class StandIn:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.replay: dict[str, bytes] = {}
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests += 1
        await asyncio.sleep(self.latency)
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key", b"").decode()
        path = scope["path"]
        status = 200
        if path == "/_stats":
            payload = json.dumps({"requests": self.requests}).encode()
        elif key and key in self.replay:
            payload = self.replay[key]
        else:
            params = _nest(parse_qsl(body.decode()))
            base = next((r for r in ROUTES if path == r or path.startswith(r + "/")), None)
            if base is None or (scope["method"] == "GET" and path == base):
                status = 404
                payload = json.dumps(
                    {"error": {"type": "invalid_request_error", "message": "no such route"}}
                ).encode()
            else:
                payload = json.dumps(ROUTES[base](params)).encode()
            if key and status == 200:
                self.replay[key] = payload
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"request-id", _id("req").encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    uvicorn.run(
        StandIn(args.latency),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
