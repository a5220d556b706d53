from decimal import Context, Decimal
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from openmeter_site.core.errors import InvalidInput

# One column type for money and quantities: room for OpenMeter's Decimal128(19) meter values.
DECIMAL_DIGITS, DECIMAL_PLACES = 38, 19
DECIMAL_LIMIT = Decimal(10) ** (DECIMAL_DIGITS - DECIMAL_PLACES)  # the columns hold less than this in magnitude
_EXACT = Context(prec=200)  # more digits than any value stored or computed (a rollup sum has 57)
# the smallest magnitude that rounds to DECIMAL_LIMIT at the column's scale (half away from zero, as PostgreSQL
# does): 9999999999999999999.99999999999999999995
_ROUNDS_TO_LIMIT = _EXACT.subtract(DECIMAL_LIMIT, Decimal(5).scaleb(-DECIMAL_PLACES - 1))


def normalized(value: Decimal) -> Decimal:
    """`value` without trailing zeros, every digit kept: `Decimal.normalize()` rounds to the default context's 28
    digits (9999999999999999999.9999999999999999999 became 1E+19 in the API's answers)."""
    return value.normalize(_EXACT)


def fits_column(value: Decimal) -> bool:
    """Whether NUMERIC(38, 19) holds `value`: under 1E+19 in magnitude once rounded to 19 decimal places (half away
    from zero, as PostgreSQL rounds), so 9999999999999999999.9999999999999999999 fits and
    9999999999999999999.99999999999999999995 does not. Exact: `abs()` would round to the default context's 28
    digits first, and refused the largest values the column holds."""
    return value.copy_abs() < _ROUNDS_TO_LIMIT


class DecimalColumn(models.DecimalField):
    """NUMERIC(38, 19). A value the column cannot hold is refused before PostgreSQL's "numeric field overflow":
    an InvalidInput naming the field (a 400 from the API, before the transaction commits) instead of a DataError.
    Migrations see a plain DecimalField."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", DECIMAL_DIGITS)
        kwargs.setdefault("decimal_places", DECIMAL_PLACES)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DecimalField", args, kwargs

    def get_db_prep_save(self, value: Any, connection: BaseDatabaseWrapper) -> Any:
        number = self.to_python(value)
        if number is not None and not fits_column(number):
            raise InvalidInput(f"{self.name}: {number:.6E} is out of range (less than 1E+19 in magnitude)")
        return super().get_db_prep_save(value, connection)


SUM_DIGITS = 57  # a sum of values under 1E+19 each: up to 2^63 of them (38 digits before the point) at scale 19


class QuantityColumn(models.DecimalField):
    """NUMERIC(57, 19): a quantity summed from meter values (usage in a period), which may pass 1E+19 where each
    value is under it. Migrations see a plain DecimalField."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", SUM_DIGITS)
        kwargs.setdefault("decimal_places", DECIMAL_PLACES)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DecimalField", args, kwargs
