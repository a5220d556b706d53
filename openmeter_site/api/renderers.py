"""orjson rendering. Decimals that reach the renderer are JSON numbers written exactly (usage values);
money fields are strings already (serializers coerce them, as the spec's `Numeric` wants)."""

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
from rest_framework import renderers


def to_json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f"))
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def format_datetime(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as OpenMeter writes it."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def dumps(data: Any) -> bytes:
    try:
        return _orjson_dumps(data)
    except TypeError as exc:  # orjson writes 64-bit integers only; free-form JSON (metadata) may hold larger ones
        if "64-bit" not in str(exc):
            raise
        return _orjson_dumps(_big_integers_as_doubles(data))


def _orjson_dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=to_json_default, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME)


def _big_integers_as_doubles(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, dict):
        return {key: _big_integers_as_doubles(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_big_integers_as_doubles(item) for item in value]
    return value


class JSONRenderer(renderers.BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if data is None:
            return b""
        return dumps(data)
