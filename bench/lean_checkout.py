"""The lean reference: the same work as the service's hot paths, as tightly as the stack allows.

`bench/run.py` runs this app right before the service's B1 and B2 rows, against the same
PostgreSQL server and the same Stripe stand-in, and prints the service's figures as ratios of
these. It answers one question: how much CPU does a fresh single-listing checkout (or one
`payment_intent.succeeded`) need on this machine, with FastAPI, asyncpg and the stripe SDK and
nothing else? No middleware, no ORM, no logging; its own tables in the schema `lean`.

    POST /checkout  Bearer <HS256 access token>  {"listing_id": "…", "quantity": 1}
      verify the token; SELECT the user by primary key (active, buyer); SELECT the listing joined
      to its vendor; one transaction: conditional stock UPDATE … RETURNING, INSERT the payment,
      the order and the item; create the PaymentIntent through the stripe SDK's async client
      (destination charge, application fee, Idempotency-Key, our ids in metadata); UPDATE the
      payment with the PaymentIntent id and client secret; answer JSON with the client secret.

    POST /webhook   Stripe-Signature  payment_intent.succeeded
      verify the signature; one transaction: INSERT the event (unique id), UPDATE the payment,
      UPDATE its orders, INSERT the ledger rows.

Run: `LEAN_DATABASE_URL=postgresql://… STRIPE_API_BASE=http://127.0.0.1:12111 \
      JWT_SECRET=… WEBHOOK_SECRET=… uvicorn lean_checkout:create_app --factory`
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import jwt
import stripe
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

FEE_BPS = 1000

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS lean;
CREATE TABLE IF NOT EXISTS lean.users (
    id uuid PRIMARY KEY, role text NOT NULL, is_active boolean NOT NULL DEFAULT true);
CREATE TABLE IF NOT EXISTS lean.vendors (
    id uuid PRIMARY KEY, stripe_account_id text NOT NULL, charges_enabled boolean NOT NULL);
CREATE TABLE IF NOT EXISTS lean.listings (
    id uuid PRIMARY KEY, vendor_id uuid NOT NULL REFERENCES lean.vendors,
    price_amount bigint NOT NULL, currency text NOT NULL, stock_quantity integer NOT NULL,
    status text NOT NULL);
CREATE TABLE IF NOT EXISTS lean.payments (
    id uuid PRIMARY KEY, buyer_id uuid NOT NULL REFERENCES lean.users, status text NOT NULL,
    currency text NOT NULL, amount bigint NOT NULL, platform_fee bigint NOT NULL,
    stripe_payment_intent_id text UNIQUE, client_secret text,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS lean.orders (
    id uuid PRIMARY KEY, payment_id uuid NOT NULL REFERENCES lean.payments,
    vendor_id uuid NOT NULL REFERENCES lean.vendors, status text NOT NULL,
    currency text NOT NULL, amount bigint NOT NULL, platform_fee bigint NOT NULL,
    vendor_amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS ix_lean_orders_payment ON lean.orders (payment_id);
CREATE TABLE IF NOT EXISTS lean.order_items (
    id uuid PRIMARY KEY, order_id uuid NOT NULL REFERENCES lean.orders,
    listing_id uuid NOT NULL REFERENCES lean.listings, quantity integer NOT NULL,
    unit_amount bigint NOT NULL);
CREATE TABLE IF NOT EXISTS lean.stripe_events (
    id text PRIMARY KEY, type text NOT NULL, payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS lean.ledger (
    id bigserial PRIMARY KEY, payment_id uuid NOT NULL, kind text NOT NULL,
    amount bigint NOT NULL, currency text NOT NULL, stripe_id text);
"""

RESERVE = """
UPDATE lean.listings SET stock_quantity = stock_quantity - $2
WHERE id = $1 AND status = 'active' AND stock_quantity >= $2
RETURNING price_amount, currency
"""
INSERT_PAYMENT = """
INSERT INTO lean.payments (id, buyer_id, status, currency, amount, platform_fee)
VALUES ($1, $2, 'requires_payment', $3, $4, $5)
"""
INSERT_ORDER = """
INSERT INTO lean.orders (id, payment_id, vendor_id, status, currency, amount, platform_fee,
                         vendor_amount)
VALUES ($1, $2, $3, 'pending_payment', $4, $5, $6, $7)
"""
INSERT_ITEM = """
INSERT INTO lean.order_items (id, order_id, listing_id, quantity, unit_amount)
VALUES ($1, $2, $3, $4, $5)
"""
RECORD_INTENT = """
UPDATE lean.payments SET stripe_payment_intent_id = $2, client_secret = $3 WHERE id = $1
"""
INSERT_EVENT = """
INSERT INTO lean.stripe_events (id, type, payload) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (id) DO NOTHING RETURNING id
"""
SUCCEED_PAYMENT = """
UPDATE lean.payments SET status = 'succeeded'
WHERE id = $1 AND stripe_payment_intent_id = $2 AND amount = $3 AND currency = $4
  AND status IN ('requires_payment', 'processing')
RETURNING amount, platform_fee, currency
"""
PAY_ORDERS = """
UPDATE lean.orders SET status = 'paid' WHERE payment_id = $1 AND status = 'pending_payment'
RETURNING vendor_amount
"""
INSERT_LEDGER = """
INSERT INTO lean.ledger (payment_id, kind, amount, currency, stripe_id)
SELECT $1, kind, amount, $2, $3 FROM unnest($4::text[], $5::bigint[]) AS t(kind, amount)
"""


def _problem(status: int, code: str) -> JSONResponse:
    return JSONResponse(
        {"status": status, "code": code}, status_code=status, media_type="application/problem+json"
    )


def create_app() -> FastAPI:
    dsn = os.environ["LEAN_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    jwt_secret = os.environ["JWT_SECRET"]
    webhook_secret = os.environ["WEBHOOK_SECRET"]
    client = stripe.StripeClient(
        "sk_test_lean",
        base_addresses={"api": os.environ["STRIPE_API_BASE"]},
        max_network_retries=0,
        http_client=stripe.HTTPXClient(timeout=30),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=32, max_size=32)
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/checkout")
    async def checkout(request: Request, authorization: str = Header("")) -> Response:
        pool: asyncpg.Pool = request.app.state.pool
        try:
            claims = jwt.decode(
                authorization.removeprefix("Bearer "),
                jwt_secret,
                algorithms=["HS256"],
                options={"require": ["sub", "exp", "iat", "typ", "role"]},
            )
            buyer_id = uuid.UUID(claims["sub"])
        except (jwt.PyJWTError, ValueError, KeyError):
            return _problem(401, "not_authenticated")
        body = json.loads(await request.body())
        listing_id, quantity = uuid.UUID(body["listing_id"]), int(body["quantity"])
        async with pool.acquire() as conn:
            user = await conn.fetchrow(
                "SELECT role, is_active FROM lean.users WHERE id = $1", buyer_id
            )
            if user is None or not user["is_active"] or user["role"] != "buyer":
                return _problem(401, "not_authenticated")
            listing = await conn.fetchrow(
                "SELECT l.vendor_id, v.stripe_account_id, v.charges_enabled "
                "FROM lean.listings l JOIN lean.vendors v ON v.id = l.vendor_id "
                "WHERE l.id = $1",
                listing_id,
            )
            if listing is None or not listing["charges_enabled"]:
                return _problem(404, "listing_not_found")
            payment_id, order_id = uuid.uuid4(), uuid.uuid4()
            async with conn.transaction():
                reserved = await conn.fetchrow(RESERVE, listing_id, quantity)
                if reserved is None:
                    return _problem(409, "out_of_stock")
                amount = reserved["price_amount"] * quantity
                currency = reserved["currency"]
                fee = amount * FEE_BPS // 10_000
                await conn.execute(INSERT_PAYMENT, payment_id, buyer_id, currency, amount, fee)
                await conn.execute(
                    INSERT_ORDER,
                    order_id,
                    payment_id,
                    listing["vendor_id"],
                    currency,
                    amount,
                    fee,
                    amount - fee,
                )
                await conn.execute(
                    INSERT_ITEM, uuid.uuid4(), order_id, listing_id, quantity, amount // quantity
                )
        # No transaction (and no connection) held across the Stripe call.
        intent = await client.v1.payment_intents.create_async(
            params={
                "amount": amount,
                "currency": currency,
                "automatic_payment_methods": {"enabled": True},
                "application_fee_amount": fee,
                "transfer_data": {"destination": listing["stripe_account_id"]},
                "metadata": {"payment_id": str(payment_id), "order_ids": str(order_id)},
            },
            options={"idempotency_key": f"payment:{payment_id}:create"},
        )
        async with pool.acquire() as conn:
            await conn.execute(RECORD_INTENT, payment_id, intent.id, intent.client_secret)
        return JSONResponse(
            {
                "payment_id": str(payment_id),
                "order_ids": [str(order_id)],
                "amount": amount,
                "currency": currency,
                "client_secret": intent.client_secret,
            },
            status_code=201,
        )

    @app.post("/webhook")
    async def webhook(request: Request, stripe_signature: str = Header("")) -> Response:
        pool: asyncpg.Pool = request.app.state.pool
        payload = await request.body()
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode(), stripe_signature, webhook_secret, 300
            )
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            return _problem(400, "invalid_signature")
        event: dict[str, Any] = json.loads(payload)
        intent = event["data"]["object"]
        payment_id = uuid.UUID(intent["metadata"]["payment_id"])
        async with pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(INSERT_EVENT, event["id"], event["type"], payload.decode()):
                paid = await conn.fetchrow(
                    SUCCEED_PAYMENT, payment_id, intent["id"], intent["amount"], intent["currency"]
                )
                if paid is not None:
                    shares = await conn.fetch(PAY_ORDERS, payment_id)
                    vendor_total = sum(row["vendor_amount"] for row in shares)
                    await conn.execute(
                        INSERT_LEDGER,
                        payment_id,
                        paid["currency"],
                        intent.get("latest_charge"),
                        ["charge", "application_fee", "vendor_share"],
                        [paid["amount"], paid["platform_fee"], vendor_total],
                    )
        return JSONResponse({"received": True})

    return app


async def prepare(dsn: str) -> None:
    """Create the `lean` schema afresh."""
    conn = await asyncpg.connect(dsn.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS lean CASCADE")
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
