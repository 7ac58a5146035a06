"""The one way a Stripe call is made: `StripeCalls._call`, and the answer parsed into our types.

Every call is async (`*_async` methods), goes through `_call` (timed, counted, traced, Stripe's
exceptions mapped to our problems), and its answer is parsed into a model of `objects.py`: no
StripeObject leaves this package.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import stripe
from opentelemetry.trace import SpanKind

from marketplace_api import tracing
from marketplace_api.integrations.stripe.errors import StripeAnswerInvalid, map_stripe_error
from marketplace_api.integrations.stripe.objects import (
    StripeModel,
    StripeObjectInvalid,
    StripePart,
    parse_object,
    parse_part,
)
from marketplace_api.metrics import stripe_call

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_M = TypeVar("_M", bound=StripeModel)
_P = TypeVar("_P", bound=StripePart)


class StripeCalls:
    """An injected `stripe.StripeClient` and the wrapper every call goes through."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    async def _call(self, awaitable: Awaitable[_T], *, operation: str | None = None) -> _T:
        """Await one Stripe call; a Stripe exception leaves as our problem (`map_stripe_error`).

        Each call is timed and counted for /metrics by its SDK method, e.g. `PaymentIntent.create`,
        and, with traces on, is one span of that name holding our idempotency key and Stripe's
        request id (never parameters).
        """
        if operation is None:
            qualname = getattr(awaitable, "__qualname__", "stripe")
            operation = qualname.replace("Service.", ".").removesuffix("_async")
        with tracing.span(
            f"stripe {operation}",
            kind=SpanKind.CLIENT,
            attributes={"stripe.operation": operation},
        ) as span:
            try:
                with stripe_call(operation):
                    return await awaitable
            except stripe.StripeError as exc:
                span.set_attribute("stripe.error", type(exc).__name__)
                raise map_stripe_error(exc) from exc

    async def _answer(self, model: type[_M], call: Awaitable[stripe.StripeObject]) -> _M:
        """One call's answer as `model`."""
        return parse_answer(model, await self._call(call))

    async def _answer_part(self, model: type[_P], call: Awaitable[stripe.StripeObject]) -> _P:
        return parse_answer_part(model, await self._call(call))

    async def _page(self, model: type[_M], call: Awaitable[stripe.ListObject[Any]]) -> list[_M]:
        """One page of a list call, each object as `model`."""
        page = await self._call(call)
        return [parse_answer(model, item) for item in page.data]


def parse_answer(model: type[_M], answer: stripe.StripeObject) -> _M:
    """The SDK's answer as our model; one we cannot read is a transient problem, never a crash."""
    try:
        return parse_object(model, answer.to_dict())
    except StripeObjectInvalid as exc:
        raise _unreadable(exc) from None


def parse_answer_part(model: type[_P], answer: stripe.StripeObject) -> _P:
    try:
        return parse_part(model, answer.to_dict())
    except StripeObjectInvalid as exc:
        raise _unreadable(exc) from None


def _unreadable(exc: StripeObjectInvalid) -> StripeAnswerInvalid:
    logger.warning("stripe answered an object we cannot read", extra={"reason": str(exc)})
    return StripeAnswerInvalid(
        "Stripe's answer could not be read; it has been logged. Retry later with the same "
        "Idempotency-Key."
    )
