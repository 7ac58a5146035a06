"""Stripe's rules for amounts: supported currencies, minimum charge amounts (minor units), the
maximum, and three-decimal currencies' amounts ending in 0. Kept apart from the service's own
table on purpose: the simulator checks what the service sends against Stripe's rules."""

from __future__ import annotations

from marketplace_api.stripe_simulator.errors import StripeAPIError, invalid

MINIMUM_CHARGE = {
    "usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "nzd": 50, "chf": 50, "sek": 300,
    "nok": 300, "dkk": 250, "pln": 200, "czk": 1500, "mxn": 1000, "brl": 50, "sgd": 50,
    "hkd": 400, "inr": 50, "jpy": 50, "krw": 700, "vnd": 13000, "clp": 500, "kwd": 160,
    "bhd": 190, "jod": 360, "omr": 200, "tnd": 1600,
}  # fmt: skip
THREE_DECIMAL = frozenset({"kwd", "bhd", "jod", "omr", "tnd"})
MAXIMUM_AMOUNT = 99_999_999


def check_currency(currency: str, param: str = "currency") -> str:
    if currency not in MINIMUM_CHARGE:
        raise invalid(f"Invalid currency: {currency}.", param=param, code="parameter_invalid")
    return currency


def check_charge_amount(amount: int, currency: str, param: str = "amount") -> None:
    check_currency(currency)
    minimum = MINIMUM_CHARGE[currency]
    if amount < minimum:
        raise StripeAPIError(
            400,
            f"Amount must be at least {minimum} {currency} (minor units).",
            code="amount_too_small",
            param=param,
        )
    if amount > MAXIMUM_AMOUNT:
        raise StripeAPIError(
            400,
            f"Amount must be no more than {MAXIMUM_AMOUNT} {currency}.",
            code="amount_too_large",
            param=param,
        )
    if currency in THREE_DECIMAL and amount % 10:
        raise invalid(
            f"Amounts in {currency} must end in 0 (card networks settle two decimals).",
            param=param,
            code="invalid_amount",
        )


def check_positive(amount: int, param: str = "amount") -> None:
    if amount < 1:
        raise invalid("This value must be greater than or equal to 1.", param=param)


def amount_up_to(
    requested: int | None, remaining: int, too_large: str, code: str | None = None
) -> int:
    """The `amount` a refund asks for (all that `remaining` allows when it names none), refused
    when it is not positive or more than remains; `too_large` names both, as Stripe's message."""
    amount = remaining if requested is None else requested
    check_positive(amount)
    if amount > remaining:
        raise invalid(
            too_large.format(amount=amount, remaining=remaining), param="amount", code=code
        )
    return amount
