"""Money: integer amounts in a currency's minor unit, the currency table, and exact fee splits.

Amounts are never floats. `Currency.exponent` says how many minor units make a major one
(usd 2 → cents, jpy 0, kwd 3 → fils). Minimum charge amounts are Stripe's (in minor units); for
currencies Stripe's table does not list, the minimum is set near the 0.50 USD equivalent Stripe
applies to them. The maximum is Stripe's too: an amount has at most eight digits (99,999,999
minor units: 999,999.99 USD), the largest multiple of the currency's step below that.

Fee rounding rule: `platform_fee = round_half_up(amount * bps / 10_000)` computed with integers
(`(amount * bps + 5_000) // 10_000`), and `vendor_amount = amount - platform_fee`, so
`vendor_amount + platform_fee == amount` holds exactly for every amount.
"""

from __future__ import annotations

from dataclasses import dataclass

BPS_DENOMINATOR = 10_000
MAXIMUM_CHARGE_AMOUNT = 99_999_999  # Stripe: `amount` supports up to eight digits


@dataclass(frozen=True, slots=True)
class Currency:
    code: str  # lower-case ISO 4217, as Stripe spells it
    exponent: int
    minimum_charge_amount: int  # minor units
    # Three-decimal currencies: Stripe requires card amounts to be a multiple of 10 (the last
    # digit 0), because card networks settle them with two decimals.
    amount_step: int = 1

    @property
    def maximum_charge_amount(self) -> int:
        return MAXIMUM_CHARGE_AMOUNT - MAXIMUM_CHARGE_AMOUNT % self.amount_step


def _c(code: str, exponent: int, minimum: int, step: int = 1) -> Currency:
    return Currency(code, exponent, minimum, step)


SUPPORTED_CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        # two-decimal
        _c("usd", 2, 50),
        _c("eur", 2, 50),
        _c("gbp", 2, 30),
        _c("cad", 2, 50),
        _c("aud", 2, 50),
        _c("nzd", 2, 50),
        _c("chf", 2, 50),
        _c("sek", 2, 300),
        _c("nok", 2, 300),
        _c("dkk", 2, 250),
        _c("pln", 2, 200),
        _c("czk", 2, 1500),
        _c("mxn", 2, 1000),
        _c("brl", 2, 50),
        _c("sgd", 2, 50),
        _c("hkd", 2, 400),
        _c("inr", 2, 50),
        # zero-decimal
        _c("jpy", 0, 50),
        _c("krw", 0, 700),
        _c("vnd", 0, 13000),
        _c("clp", 0, 500),
        # three-decimal (amounts must end in 0)
        _c("kwd", 3, 160, step=10),
        _c("bhd", 3, 190, step=10),
        _c("jod", 3, 360, step=10),
        _c("omr", 3, 200, step=10),
        _c("tnd", 3, 1600, step=10),
    )
}

ZERO_DECIMAL = frozenset(c.code for c in SUPPORTED_CURRENCIES.values() if c.exponent == 0)
THREE_DECIMAL = frozenset(c.code for c in SUPPORTED_CURRENCIES.values() if c.exponent == 3)


class UnsupportedCurrency(ValueError):
    pass


class InvalidAmount(ValueError):
    pass


def get_currency(code: str) -> Currency:
    try:
        return SUPPORTED_CURRENCIES[code.lower()]
    except KeyError:
        raise UnsupportedCurrency(
            f"unsupported currency {code!r}; supported: {', '.join(sorted(SUPPORTED_CURRENCIES))}"
        ) from None


def validate_price(amount: int, currency_code: str) -> None:
    """A listing price: positive and representable in the currency (step of 10 for 3-decimal)."""
    currency = get_currency(currency_code)
    if amount <= 0:
        raise InvalidAmount("amount must be a positive integer in minor units")
    if amount % currency.amount_step:
        raise InvalidAmount(
            f"{currency.code} amounts must be a multiple of {currency.amount_step} minor units"
        )


def validate_charge_amount(amount: int, currency_code: str) -> None:
    """A charge Stripe accepts: a valid price, between Stripe's minimum and maximum for the
    currency. The one rule for listing prices (so every listing can be bought) and payments."""
    validate_price(amount, currency_code)
    currency = get_currency(currency_code)
    if amount < currency.minimum_charge_amount:
        raise InvalidAmount(
            f"the minimum charge in {currency.code} is {currency.minimum_charge_amount} minor units"
        )
    if amount > currency.maximum_charge_amount:
        raise InvalidAmount(
            f"the maximum charge in {currency.code} is {currency.maximum_charge_amount} minor units"
        )


@dataclass(frozen=True, slots=True)
class FeeSplit:
    amount: int
    platform_fee: int
    vendor_amount: int


def split_fee(amount: int, fee_bps: int) -> FeeSplit:
    """Split `amount` into the platform fee (rounded half up) and the vendor's share, exactly."""
    if amount < 0:
        raise InvalidAmount("amount must not be negative")
    if not 0 <= fee_bps <= BPS_DENOMINATOR:
        raise InvalidAmount("fee must be between 0 and 10000 basis points")
    fee = (amount * fee_bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR
    return FeeSplit(amount=amount, platform_fee=fee, vendor_amount=amount - fee)


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split `total` in proportion to `weights`, exactly (largest remainder, ties to the first).

    Used for partial refunds across vendors and fee/vendor shares: the parts always sum to `total`.
    """
    if total < 0 or any(w < 0 for w in weights):
        raise InvalidAmount("total and weights must not be negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        if total:
            raise InvalidAmount("cannot allocate a positive total over zero weights")
        return [0 for _ in weights]
    floors = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    left = total - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        floors[i] += 1
    return floors
