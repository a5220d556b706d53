"""JSON request bodies. Fractional numbers are parsed as Decimal, so a float never reaches money."""

import json
from decimal import Decimal
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


def loads(raw: bytes) -> Any:
    """Parse JSON keeping fractional numbers exact (Decimal), never float. PostgreSQL text and jsonb cannot
    hold a NUL character, so a body with one is refused here rather than failing at the database."""
    try:
        data = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"malformed JSON: {exc}") from exc
    if b"\\u0000" in raw and _has_nul(data):
        raise ParseError("NUL characters (\\u0000) are not supported in strings")
    return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class JSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return loads(stream.read())


class CloudEventsParser(JSONParser):
    media_type = "application/cloudevents+json"


class CloudEventsBatchParser(JSONParser):
    media_type = "application/cloudevents-batch+json"
