"""JSON request bodies. Fractional numbers are parsed as Decimal, so a float never reaches money."""

import json
from decimal import Decimal
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# No request of the spec nests deeper than a dozen levels; free-form objects (metadata, tax config) get the rest.
MAX_DEPTH = 64


def loads(raw: bytes) -> Any:
    """Parse JSON keeping fractional numbers exact (Decimal), never float. Refused here rather than failing later:
    NaN and Infinity (not JSON, and neither PostgreSQL's jsonb nor NUMERIC money takes them), nesting deeper than
    MAX_DEPTH (Python's recursion limit is near), and NUL characters (PostgreSQL text and jsonb cannot hold one)."""
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_not_a_json_number)
    except RecursionError as exc:
        raise ParseError(f"malformed JSON: nested more than {MAX_DEPTH} levels deep") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"malformed JSON: {exc}") from exc
    check_nul = b"\\u0000" in raw
    if check_nul or raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        _check_depth_and_nul(data, check_nul=check_nul)
    return data


def _not_a_json_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_depth_and_nul(data: Any, *, check_nul: bool) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if check_nul and "\x00" in value:
                raise ParseError("NUL characters (\\u0000) are not supported in strings")
            continue
        if isinstance(value, dict):
            if check_nul and any("\x00" in key for key in value):
                raise ParseError("NUL characters (\\u0000) are not supported in strings")
            items = list(value.values())
        elif isinstance(value, list):
            items = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise ParseError(f"malformed JSON: nested more than {MAX_DEPTH} levels deep")
        stack.extend((item, depth + 1) for item in items)


class JSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return loads(stream.read())


class CloudEventsParser(JSONParser):
    media_type = "application/cloudevents+json"


class CloudEventsBatchParser(JSONParser):
    media_type = "application/cloudevents-batch+json"
