"""Buyer checkout and orders: /v1/buyer/orders."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse

from marketplace_api.api.idempotency import IDEMPOTENCY_ERRORS, Idempotent
from marketplace_api.api.params import CursorQuery
from marketplace_api.checkout import orders as service
from marketplace_api.checkout.schemas import (
    CheckoutCreate,
    CheckoutRead,
    CheckoutSessionRead,
    OrderPage,
    OrderRead,
)
from marketplace_api.checkout.service import checkout
from marketplace_api.deps import CurrentBuyer, SessionDep, SettingsDep, StripeGatewayDep, rate_limit
from marketplace_api.errors import problem_responses
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import (
    StripeNotConfigured,
    StripePermissionDenied,
    StripeRateLimited,
    StripeRequestRejected,
    StripeUnavailable,
)
from marketplace_api.orders.exceptions import (
    InvalidCartAmount,
    ListingsUnavailable,
    MixedCurrencies,
    OrderNotCancellable,
    OrderNotFound,
    OutOfStock,
    TooManyItems,
    VendorCannotAcceptPayments,
)
from marketplace_api.orders.queries import get_buyer_order
from marketplace_api.payments.exceptions import PaymentNotPayable
from marketplace_api.ratelimit import RateLimited

router = APIRouter(prefix="/orders", tags=["buyer"])

STRIPE_ERRORS = (
    StripePermissionDenied,
    StripeRequestRejected,
    StripeUnavailable,
    StripeRateLimited,
    StripeNotConfigured,
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CheckoutRead,
    summary="Check out a cart: reserve stock, create the orders and the PaymentIntent",
    description=(
        "One order per vendor, one payment for the cart. Confirm the payment with Stripe.js "
        "using `client_secret` (and `stripe_account` for direct charges) before `expires_at`. "
        "Send an `Idempotency-Key` to retry safely: after a 503 the retry resumes the same "
        "payment, never creating a second PaymentIntent."
    ),
    responses=problem_responses(
        ListingsUnavailable,
        MixedCurrencies,
        InvalidCartAmount,
        TooManyItems,
        OutOfStock,
        VendorCannotAcceptPayments,
        *IDEMPOTENCY_ERRORS,
        PaymentNotPayable,
        RateLimited,
        *STRIPE_ERRORS,
    ),
    dependencies=[rate_limit("checkout", per="user")],
)
async def create_order(
    body: CheckoutCreate,
    buyer: CurrentBuyer,
    session: SessionDep,
    settings: SettingsDep,
    gateway: StripeGatewayDep,
    idem: Idempotent,
) -> JSONResponse:
    async def handler(context: IdempotencyContext | None) -> CheckoutRead:
        return await checkout(
            session, gateway, settings, buyer, body, now=idem.now, idempotency=context
        )

    return await idem.run(buyer.id, body, handler, status_code=status.HTTP_201_CREATED)


@router.get("", summary="The buyer's orders, newest first")
async def list_orders(
    buyer: CurrentBuyer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorQuery = None,
) -> OrderPage:
    return await service.list_buyer_orders(session, buyer.id, limit=limit, cursor=cursor)


@router.get(
    "/{order_id}",
    summary="One of the buyer's orders: items, amounts, payment and fulfilment status",
    responses=problem_responses(OrderNotFound),
)
async def get_order(order_id: uuid.UUID, buyer: CurrentBuyer, session: SessionDep) -> OrderRead:
    order = await get_buyer_order(session, buyer.id, order_id)
    return await service.order_read(session, order)


@router.post(
    "/{order_id}/cancel",
    summary="Cancel an unpaid order (and the other orders of its payment); stock is released",
    description=(
        "Cancels the PaymentIntent at Stripe first, so it cannot be paid afterwards. A payment "
        "that is paid or processing cannot be cancelled (409): ask for a refund instead. "
        "Cancelling an already cancelled or expired order answers its current state."
    ),
    response_model=OrderRead,
    responses=problem_responses(
        OrderNotFound, OrderNotCancellable, *IDEMPOTENCY_ERRORS, *STRIPE_ERRORS
    ),
)
async def cancel_order(
    order_id: uuid.UUID,
    buyer: CurrentBuyer,
    session: SessionDep,
    gateway: StripeGatewayDep,
    idem: Idempotent,
) -> JSONResponse:
    async def handler(_: IdempotencyContext | None) -> OrderRead:
        return await service.cancel_order(session, gateway, buyer.id, order_id, now=idem.now)

    return await idem.run(buyer.id, None, handler)


@router.post(
    "/{order_id}/checkout-session",
    summary="A Stripe Checkout (hosted page) session for the order's payment",
    description=(
        "Alternative to the Payment Element. The session pays the whole payment: when the cart "
        "had several vendors, all their orders. Redirect the buyer to `url`. The stock "
        "reservation is extended to the session's expiry when needed (Stripe requires at least "
        "30 minutes). An open session is returned again."
    ),
    response_model=CheckoutSessionRead,
    responses=problem_responses(
        OrderNotFound, PaymentNotPayable, RateLimited, *IDEMPOTENCY_ERRORS, *STRIPE_ERRORS
    ),
    # It calls Stripe: counted against the buyer's checkout budget.
    dependencies=[rate_limit("checkout", per="user")],
)
async def create_checkout_session(
    order_id: uuid.UUID,
    buyer: CurrentBuyer,
    session: SessionDep,
    settings: SettingsDep,
    gateway: StripeGatewayDep,
    idem: Idempotent,
) -> JSONResponse:
    async def handler(context: IdempotencyContext | None) -> CheckoutSessionRead:
        return await service.order_checkout_session(
            session, gateway, settings, buyer, order_id, now=idem.now, idempotency=context
        )

    return await idem.run(buyer.id, None, handler)
