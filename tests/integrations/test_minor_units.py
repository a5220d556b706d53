from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integrations.stripe.client import to_minor_units


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("12.345", "USD", 1235),  # 1234.5 cents, half up
        ("12.344", "USD", 1234),
        ("0.005", "USD", 1),
        ("-0.005", "USD", -1),  # half away from zero, as OpenMeter rounds
        ("100", "USD", 10000),
        ("1234.5", "JPY", 1235),  # no minor unit
        ("1.2345", "KWD", 1235),  # three decimals: 1234.5 fils
        ("0.1", "EUR", 10),
    ],
)
def test_to_minor_units_examples(amount, currency, expected):
    assert to_minor_units(Decimal(amount), currency) == expected


@given(cents=st.integers(min_value=-10**12, max_value=10**12))
def test_whole_cents_convert_exactly(cents):
    assert to_minor_units(Decimal(cents) / 100, "USD") == cents


@given(value=st.decimals(min_value=-10**9, max_value=10**9, places=6, allow_nan=False, allow_infinity=False))
def test_within_half_a_cent_and_an_integer(value):
    minor = to_minor_units(value, "USD")
    assert isinstance(minor, int)
    assert abs(Decimal(minor) - value * 100) <= Decimal("0.5")
    assert minor == int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
