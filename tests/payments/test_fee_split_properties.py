"""Property tests of the fee split (money.split_fee / allocate) across currency exponents.

Rounding rule (money.py): platform_fee = round half up of amount * bps / 10000, computed with
integers as (amount * bps + 5000) // 10000; vendor_amount = amount - platform_fee.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from marketplace_api.money import allocate, get_currency, split_fee, validate_charge_amount

CURRENCIES = ["usd", "eur", "jpy", "kwd"]


@st.composite
def charge(draw: st.DrawFn) -> tuple[str, int]:
    code = draw(st.sampled_from(CURRENCIES))
    currency = get_currency(code)
    units = draw(
        st.integers(
            min_value=-(-currency.minimum_charge_amount // currency.amount_step),
            max_value=99_999_999 // currency.amount_step,
        )
    )
    return code, units * currency.amount_step


@given(charge(), st.integers(min_value=0, max_value=10_000))
def test_fee_and_vendor_share_sum_exactly(money: tuple[str, int], bps: int) -> None:
    code, amount = money
    validate_charge_amount(amount, code)  # the generator only makes chargeable amounts
    split = split_fee(amount, bps)
    assert split.platform_fee + split.vendor_amount == amount
    assert 0 <= split.platform_fee <= amount
    exact = Fraction(amount * bps, 10_000)
    # half up: never more than half a minor unit away, and exactly .5 rounds up
    assert abs(split.platform_fee - exact) <= Fraction(1, 2)
    if exact - int(exact) == Fraction(1, 2):
        assert split.platform_fee == int(exact) + 1
    assert split.platform_fee == (amount * bps + 5_000) // 10_000


@given(
    st.sampled_from(CURRENCIES),
    st.integers(min_value=0, max_value=10**9),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20).filter(
        lambda w: sum(w) > 0
    ),
)
def test_allocate_parts_sum_exactly(code: str, total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(Fraction(part) - Fraction(total * weight, weight_sum)) < 1
        if weight == 0:
            assert part == 0
    assert get_currency(code).code == code


@given(charge(), st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=5))
def test_cart_fee_is_the_sum_of_order_fees(money: tuple[str, int], fees: list[int]) -> None:
    _, amount = money
    shares = allocate(amount, [1] * len(fees))
    splits = [split_fee(share, bps) for share, bps in zip(shares, fees, strict=True)]
    assert sum(s.amount for s in splits) == amount
    assert sum(s.platform_fee + s.vendor_amount for s in splits) == amount
