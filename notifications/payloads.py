"""Event payloads (the webhook bodies): JSON bytes with exact decimals, written once and signed as stored."""

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson

from openmeter_site.core.fields import normalized
from openmeter_site.core.time import format_rfc3339


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(normalized(value), "f"))
    if isinstance(value, dt.datetime):
        return format_rfc3339(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data: Any) -> str:
    """Decimals become exact JSON numbers (`12.5`, never `1.25E+1`); datetimes RFC 3339 with `Z`."""
    return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME).decode()


def build(*, event_id: str, event_type: str, timestamp: dt.datetime, data: dict[str, Any]) -> str:
    return dumps({"id": event_id, "type": event_type, "timestamp": timestamp, "data": data})


def number_str(value: Decimal) -> str:
    """`Decimal('10.5000')` → `"10.5"`, never an exponent."""
    text = format(normalized(Decimal(value)), "f")
    return "0" if text in {"-0", ""} else text
