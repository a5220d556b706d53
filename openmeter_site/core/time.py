"""Time rules: aware UTC datetimes everywhere; RFC 3339 in (any offset, fractional seconds), `Z` out."""

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from openmeter_site.core.errors import InvalidInput

RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$"
)


def parse_rfc3339(value: str, field: str = "time") -> dt.datetime:
    if not isinstance(value, str) or not RFC3339_RE.match(value):
        raise InvalidInput(f"{field}: invalid RFC 3339 date-time {value!r} (an offset such as Z is required)")
    text = value.replace("z", "Z").replace("t", "T")
    # Python accepts at most 6 fractional digits; RFC 3339 allows more (nanoseconds from Go clients).
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
    except ValueError as exc:
        raise InvalidInput(f"{field}: invalid date-time {value!r}: {exc}") from exc
    except OverflowError as exc:
        raise InvalidInput(f"{field}: date-time {value!r} is out of range in UTC") from exc


def parse_time_zone(name: str | None, field: str = "windowTimeZone") -> ZoneInfo:
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a name too long for a file name
        raise InvalidInput(f"{field}: unknown time zone {name!r}") from exc


def truncate_to_minute(value: dt.datetime) -> dt.datetime:
    return value.replace(second=0, microsecond=0)


def format_rfc3339(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
