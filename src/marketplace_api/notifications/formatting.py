"""Amounts and dates for people, per currency and locale (babel; never floats).

An amount is an integer in the currency's minor unit; `Decimal(amount).scaleb(-exponent)` turns it
into major units exactly (1999 usd → 19.99, 500 jpy → 500, 1250 kwd → 1.250), and babel formats it
the way the locale writes that currency (`$19.99`, `19,99 €`, `￥500`, `KWD 1.250`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from babel.dates import format_datetime as babel_format_datetime
from babel.numbers import format_currency, get_currency_precision

from marketplace_api.money import SUPPORTED_CURRENCIES


def currency_exponent(currency: str) -> int:
    known = SUPPORTED_CURRENCIES.get(currency.lower())
    if known is not None:
        return known.exponent
    return int(get_currency_precision(currency.upper()))


def major_units(amount: int, currency: str) -> Decimal:
    """`amount` minor units as an exact Decimal of major units."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amounts are integers in minor units")
    return Decimal(amount).scaleb(-currency_exponent(currency))


def format_money(amount: int, currency: str, locale: str) -> str:
    """`format_money(1999, "usd", "en_US") == "$19.99"`."""
    return format_currency(major_units(amount, currency), currency.upper(), locale=locale)


def format_when(value: datetime | str, locale: str) -> str:
    """A timestamp (aware datetime or ISO 8601 string) in UTC, written the locale's way."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(babel_format_datetime(moment, "medium", tzinfo=UTC, locale=locale)) + " UTC"
