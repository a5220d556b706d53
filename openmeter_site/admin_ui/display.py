"""How the back office shows money, quantities and time: amounts in the currency's precision with its symbol
(right-aligned in tables), times in the operator's time zone with UTC on hover."""

import datetime as dt
from decimal import Decimal

from babel.numbers import format_currency, format_decimal
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from openmeter_site.core.fields import normalized
from openmeter_site.core.money import round_money

LOCALE = "en_US"
EMPTY = mark_safe('<span class="om-empty">—</span>')


def money_text(amount: Decimal | str | None, currency: str, *, exact: bool = False) -> str:
    """`Decimal("1234.5"), "USD"` → "$1,234.50". Totals are rounded to the currency's minor unit as billing rounds
    them; `exact` keeps sub-cent digits (unit prices such as $0.0015 a token) and never rounds."""
    if amount is None or amount == "":
        return "—"
    value = Decimal(amount)
    if exact:
        return format_currency(value, currency, locale=LOCALE, decimal_quantization=False)
    return format_currency(round_money(value, currency), currency, locale=LOCALE)


def money(amount: Decimal | str | None, currency: str, *, exact: bool = False) -> SafeString:
    if amount is None or amount == "":
        return EMPTY
    return format_html('<span class="om-num" title="{} {}">{}</span>', Decimal(amount), currency,
                       money_text(amount, currency, exact=exact))


def quantity_text(value: Decimal | str | int | None) -> str:
    """A usage quantity as an operator reads it: grouped, no trailing zeros, never in exponent form."""
    if value is None or value == "":
        return "—"
    return format_decimal(normalized(Decimal(value)), format="#,##0.##########", locale=LOCALE)


def quantity(value: Decimal | str | int | None) -> SafeString:
    if value is None or value == "":
        return EMPTY
    return format_html('<span class="om-num">{}</span>', quantity_text(value))


def when_text(value: dt.datetime | None) -> str:
    """In the active (operator's) time zone, seconds only when they are not zero."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    pattern = "%Y-%m-%d %H:%M:%S %Z" if local.second or local.microsecond else "%Y-%m-%d %H:%M %Z"
    return local.strftime(pattern)


def when(value: dt.datetime | None) -> SafeString:
    """A time in the operator's zone, its UTC instant on hover."""
    if value is None:
        return EMPTY
    utc = value.astimezone(dt.UTC)
    return format_html('<time datetime="{}" title="{} UTC">{}</time>', utc.isoformat().replace("+00:00", "Z"),
                       utc.strftime("%Y-%m-%d %H:%M:%S"), when_text(value))


def period(start: dt.datetime | None, end: dt.datetime | None) -> SafeString:
    return format_html("{} → {}", when(start), when(end) if end else "open-ended")


_DURATION_UNITS = (("Y", "year"), ("M", "month"), ("W", "week"), ("D", "day"))
_TIME_UNITS = (("H", "hour"), ("M", "minute"), ("S", "second"))


_NAMED_INTERVALS = {"HOUR": "PT1H", "DAY": "P1D", "WEEK": "P1W", "MONTH": "P1M", "YEAR": "P1Y"}  # entitlements'


def duration_text(value: str | None, *, empty: str = "—") -> str:
    """An ISO 8601 duration as an operator says it: `P1M` → "1 month", `P2W` → "2 weeks", `PT1H` → "1 hour"; an
    entitlement's named interval too (`MONTH` → "1 month")."""
    if not value:
        return empty
    value = _NAMED_INTERVALS.get(value, value)
    date_part, _, time_part = value.removeprefix("P").partition("T")
    parts = []
    for text, units in ((date_part, _DURATION_UNITS), (time_part, _TIME_UNITS)):
        for letter, unit in units:
            number, found, text = text.partition(letter)
            if not found:
                text = number
                continue
            parts.append(f"{int(number)} {unit}{'' if int(number) == 1 else 's'}")
    return " ".join(parts) or value
