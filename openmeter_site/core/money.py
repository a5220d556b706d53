"""Money is Decimal with its currency; rounded in exactly one place (`round_money`)."""

from decimal import ROUND_HALF_UP, Context, Decimal
from functools import cache

from babel.core import get_global
from babel.numbers import get_currency_name, get_currency_precision, get_currency_symbol, get_territory_currencies

# OpenMeter rounds with alpacadecimal's Round (half away from zero) to the currency's minor unit.
ROUNDING = ROUND_HALF_UP
# Enough digits to round any product of two column values (each under 1E+19, 19 decimal places) without raising
# InvalidOperation; an amount the columns cannot hold is refused when it is saved (DecimalColumn).
ROUNDING_CONTEXT = Context(prec=80)


@cache
def minor_units(currency: str) -> int:
    return get_currency_precision(currency)


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUNDING, context=ROUNDING_CONTEXT)


@cache
def known_currencies() -> frozenset[str]:
    """ISO 4217 currencies in use today as legal tender somewhere (no historical ones)."""
    territories = get_global("territory_currencies").keys()
    return frozenset(c for t in territories for c in get_territory_currencies(t, tender=True))


def is_currency(code: str) -> bool:
    return code in known_currencies()


@cache
def currency_list() -> tuple[dict[str, object], ...]:
    """Built once per process: babel's name and symbol look-ups cost milliseconds per call."""
    return tuple(
        {
            "code": code,
            "name": get_currency_name(code, locale="en"),
            "symbol": get_currency_symbol(code, locale="en"),
            "subunits": minor_units(code),  # decimal digits of the minor unit (GOBL's, as upstream)
        }
        for code in sorted(known_currencies())
    )
