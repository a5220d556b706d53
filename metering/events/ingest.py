"""Ingest request parsing (HOT PATH): orjson, one validation pass, no per-event allocation beyond what is stored.

The body is parsed twice on purpose: here with orjson (fast, to validate and to read times), and by PostgreSQL
as jsonb inside the insert statement, where each event's `data` is taken from. PostgreSQL keeps numbers exact
(orjson would turn `0.1000000000000000000001` or a 30-digit integer into a float).
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings

from metering.models import Event
from openmeter_site.core.errors import InvalidInput, PayloadTooLarge
from openmeter_site.core.lengths import column_length
from openmeter_site.core.time import RFC3339_RE, parse_rfc3339

BATCH_TYPES = {"application/cloudevents-batch+json"}
SINGLE_TYPES = {"application/cloudevents+json"}
EITHER_TYPES = {"application/json"}
REQUIRED_STRINGS = ("id", "source", "specversion", "type", "subject")
# The stored fields' column limits (longer values would make the database refuse the whole batch).
MAX_LENGTHS = {name: column_length(Event, name) for name in ("id", "source", "type", "subject")}


@dataclass(frozen=True, slots=True)
class IngestBatch:
    body: str  # the request body as JSON text: an array of events (a single event is wrapped)
    times: list[dt.datetime]  # each event's time (defaulted to now), in body order
    events: list[dict[str, Any]]  # the events as orjson read them (numbers in `data` as floats), in body order


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` → `application/json` (upstream compares exactly; we are lenient)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_ingest_body(body: bytes, content_type: str | None, *, now: dt.datetime) -> IngestBatch:
    kind = media_type(content_type)
    if kind not in BATCH_TYPES | SINGLE_TYPES | EITHER_TYPES:
        raise InvalidInput(
            f"invalid content type: {content_type or '(none)'}; expected application/cloudevents+json, "
            "application/cloudevents-batch+json or application/json"
        )
    if b"\\u0000" in body:
        raise InvalidInput("invalid event: NUL characters (\\u0000) are not supported")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from exc
    text = body.decode()
    if isinstance(parsed, dict) and kind not in BATCH_TYPES:
        events, text = [parsed], f"[{text}]"
    elif isinstance(parsed, list) and kind not in SINGLE_TYPES:
        events = parsed
    else:
        expected = "an array of events" if kind in BATCH_TYPES else "an event object"
        raise InvalidInput(f"invalid body for {kind}: expected {expected}")
    if not events:
        raise InvalidInput("invalid event: no events found")
    if len(events) > settings.OPENMETER_INGEST_MAX_EVENTS:
        raise PayloadTooLarge(f"too many events in one request: {len(events)} > {settings.OPENMETER_INGEST_MAX_EVENTS}")
    return IngestBatch(body=text, times=validate_events(events, now), events=events)


def _invalid(index: int, field: str, message: str) -> InvalidInput:
    location = f"[{index}].{field}" if field else f"[{index}]"
    return InvalidInput(
        f"invalid event {location}: {message}",
        extensions={"validationErrors": [{"field": location, "code": "invalid", "message": message}]},
    )


def validate_events(events: list[Any], now: dt.datetime) -> list[dt.datetime]:
    """One pass over the batch; the first invalid event fails the whole batch (nothing is written)."""
    times: list[dt.datetime] = []
    append = times.append
    for index, event in enumerate(events):
        if type(event) is not dict:
            raise _invalid(index, "", "an event must be a JSON object")
        for name in REQUIRED_STRINGS:
            value = event.get(name)
            if type(value) is not str or not value:
                raise _invalid(index, name, "required, a non-empty string")
            limit = MAX_LENGTHS.get(name)
            if limit is not None and len(value) > limit:
                raise _invalid(index, name, f"at most {limit} characters (got {len(value)})")
        data = event.get("data")
        if data is not None and type(data) is not dict:
            raise _invalid(index, "data", "must be a JSON object or null")
        content = event.get("datacontenttype")
        if content is not None and content != "application/json":
            raise _invalid(index, "datacontenttype", "only application/json is supported")
        raw_time = event.get("time")
        append(now if raw_time is None else _parse_time(raw_time, index))
    return times


def _parse_time(value: Any, index: int) -> dt.datetime:
    if type(value) is not str or not RFC3339_RE.match(value):
        raise _invalid(index, "time", f"invalid RFC 3339 date-time {value!r}")
    try:
        # Python 3.11 reads every RFC 3339 form except >6 fraction digits. In UTC, since PostgreSQL refuses
        # offsets beyond ±15:59 that RFC 3339 allows.
        return dt.datetime.fromisoformat(value).astimezone(dt.UTC)
    except OverflowError as exc:
        raise _invalid(index, "time", f"out of range in UTC: {value!r}") from exc
    except ValueError:
        try:
            return parse_rfc3339(value)
        except InvalidInput as exc:
            raise _invalid(index, "time", f"invalid RFC 3339 date-time {value!r}") from exc
