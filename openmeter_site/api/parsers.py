"""JSON request bodies. Fractional numbers are parsed as Decimal, so a float never reaches money."""

import json
from decimal import Decimal
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


def loads(raw: bytes) -> Any:
    """Parse JSON keeping fractional numbers exact (Decimal), never float."""
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"malformed JSON: {exc}") from exc


class JSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return loads(stream.read())


class CloudEventsParser(JSONParser):
    media_type = "application/cloudevents+json"


class CloudEventsBatchParser(JSONParser):
    media_type = "application/cloudevents-batch+json"
