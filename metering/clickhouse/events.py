"""Reading stored events back from ClickHouse: the event lists (v1, and v2 with its cursor), what meters read from
events, events per subject, and the subjects seen since a position.

Events are listed newest first by (time, source, id), the v2 cursor being that triple of the last event of a
page. An event's `ref` is its (source, id). A `subjects_since` position is an ingestion time (`ch:` and
microseconds); each call re-reads `POSITION_OVERLAP` behind it, since a batch stamped earlier may become visible
after a later one.
"""

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from metering.clickhouse import sql as ch
from metering.clickhouse.connection import EVENTS_TABLE, client
from metering.event_store import EventFilter, EventPage, MeterReading, StoredEvent, json_fragment
from metering.filters import compile_filter_string, compile_filter_time
from metering.models import Meter, MeterAggregation
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.fields import normalized

POSITION_OVERLAP = dt.timedelta(seconds=60)
_COLUMNS = "source, id, type, subject, toUnixTimestamp64Micro(time), data, toUnixTimestamp64Micro(ingested_at)"
_ORDER = "ORDER BY time DESC, source DESC, id DESC"


def _ref(source: str, event_id: str) -> str:
    return orjson.dumps([source, event_id]).decode()


def _validity_columns(meters: Sequence[Meter]) -> list[str]:
    """Per meter that reads a value: whether the event, when of its type, has one the meter can read."""
    checks = []
    for meter in meters:
        column = "u" if meter.aggregation == MeterAggregation.UNIQUE_COUNT else "v"
        expression = ch.readings_columns(meter)[column]
        checks.append(f"(type != {ch.literal(meter.event_type)} OR {expression} IS NOT NULL)")
    return checks


def _fetch(where: Sequence[str], limit: int) -> list[StoredEvent]:
    live = list(Meter.objects.filter(deleted_at__isnull=True).order_by("slug"))
    reading = [m for m in live if m.aggregation != MeterAggregation.COUNT]
    checks = _validity_columns(reading)
    columns = ", ".join([_COLUMNS, *checks])
    query = (f"SELECT {columns} FROM {EVENTS_TABLE} WHERE {' AND '.join(where) if where else '1'} "
             f"{_ORDER} LIMIT {int(limit)}")
    types = {m.event_type for m in live}
    events = []
    for source, event_id, type_, subject, time, data, ingested_at, *valid in client().query(query).result_rows:
        error = None
        if type_ not in types:
            error = f"no meter found for event type: {type_}"
        else:
            bad = next((m for m, ok in zip(reading, valid, strict=True) if not ok), None)
            if bad is not None:
                kind = "a string or number" if bad.aggregation == MeterAggregation.UNIQUE_COUNT else "a number"
                error = f"meter {bad.slug}: value property {bad.value_property} is missing or not {kind}"
        events.append(StoredEvent(_ref(source, event_id), event_id, source, type_, subject, ch.from_micros(time),
                                  json_fragment(data or None), ch.from_micros(ingested_at), validation_error=error))
    return events


def events_list(*, filters: EventFilter) -> list[StoredEvent]:
    where = [f"time >= {ch.literal(filters.start)}"]
    for clause, value in (
        ("time < {}", filters.end),
        ("ingested_at >= {}", filters.ingested_from),
        ("ingested_at < {}", filters.ingested_to),
        ("position(id, {}) > 0", filters.id_contains),
        ("position(subject, {}) > 0", filters.subject_contains),
    ):
        if value is not None:
            where.append(clause.format(ch.literal(value)))
    if filters.subjects is not None:
        where.append(f"has({ch.literal(list(filters.subjects))}, subject)")
    return _fetch(where, filters.limit)


V2_STRING_FIELDS = {"id": "id", "source": "source", "subject": "subject", "type": "type"}
V2_TIME_FIELDS = {"time": "time", "ingestedAt": "ingested_at"}


def _encode_cursor(event: StoredEvent) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ch.micros(event.time), event.source, event.id])).decode()


def _decode_cursor(cursor: str) -> tuple[int, str, str]:
    try:
        time, source, event_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInput("cursor: invalid cursor") from exc
    if not isinstance(time, int) or not isinstance(source, str) or not isinstance(event_id, str):
        raise InvalidInput("cursor: invalid cursor")
    return time, source, event_id


def events_page(
    *, filter_spec: Mapping[str, Any], subjects: Sequence[str] | None, cursor: str | None, limit: int
) -> EventPage:
    where: list[str] = []
    for name, spec in filter_spec.items():
        if spec is None:
            continue
        if name in V2_STRING_FIELDS:
            where.append(compile_filter_string(V2_STRING_FIELDS[name], spec, f"filter.{name}", ch.CLICKHOUSE))
        elif name in V2_TIME_FIELDS:
            where.append(compile_filter_time(V2_TIME_FIELDS[name], spec, f"filter.{name}", ch.CLICKHOUSE))
        else:
            raise InvalidInput(f"filter: unknown field {name!r}")
    if subjects is not None:
        where.append(f"has({ch.literal(list(subjects))}, subject)")
    if cursor:
        time, source, event_id = _decode_cursor(cursor)
        where.append(f"(time, source, id) < (fromUnixTimestamp64Micro({time}, 'UTC'), {ch.literal(source)}, "
                     f"{ch.literal(event_id)})")
    events = _fetch(where, limit)
    return EventPage(events, _encode_cursor(events[-1]) if len(events) == limit else None)


def event_readings(*, meter: Meter, refs: Sequence[str]) -> dict[str, MeterReading]:
    """What the meter reads from each event (by its (source, id)), as its queries read it."""
    keys = [tuple(orjson.loads(ref)) for ref in refs]
    if not keys:
        return {}
    columns = ch.readings_columns(meter)
    groups = sorted(meter.group_by)
    value = {"COUNT": "'1'", "UNIQUE_COUNT": "u"}.get(str(meter.aggregation), "toString(v)")
    key_list = ", ".join(f"({ch.literal(s)}, {ch.literal(i)})" for s, i in keys)
    query = (
        f"SELECT source, id, {value}, [{', '.join(f'g{i}' for i in range(len(groups)))}] FROM ("
        f"SELECT source, id, {', '.join(f'{expr} AS {name}' for name, expr in columns.items())} FROM {EVENTS_TABLE} "
        f"WHERE (source, id) IN ({key_list}))"
    )
    unique = meter.aggregation == MeterAggregation.UNIQUE_COUNT
    return {
        _ref(source, event_id): MeterReading(
            value=text if unique or text is None else normalized(Decimal(text)),
            groups=dict(zip(groups, group_values, strict=True)),
        )
        for source, event_id, text, group_values in client().query(query).result_rows
    }


def events_per_subject_since(start: dt.datetime) -> list[tuple[str, int]]:
    query = (f"SELECT subject, count() FROM {EVENTS_TABLE} WHERE time >= {ch.literal(start)} "
             "GROUP BY subject ORDER BY subject")
    return [(subject, count) for subject, count in client().query(query).result_rows]


def stream_position() -> str:
    [(latest,)] = client().query(f"SELECT toUnixTimestamp64Micro(max(ingested_at)) FROM {EVENTS_TABLE}").result_rows
    return f"ch:{latest}"


def _position(cursor: str | None) -> int:
    """A position this store made, else the start (a position of another store reads everything once)."""
    if cursor and cursor.startswith("ch:") and cursor[3:].isdigit():
        return int(cursor[3:])
    return 0


def subjects_since(cursor: str | None) -> tuple[list[str], str]:
    since = _position(cursor) - POSITION_OVERLAP // dt.timedelta(microseconds=1)
    query = (f"SELECT groupUniqArray(subject), toUnixTimestamp64Micro(max(ingested_at)) FROM {EVENTS_TABLE} "
             f"WHERE ingested_at > fromUnixTimestamp64Micro({max(since, 0)}, 'UTC')")
    [(subjects, latest)] = client().query(query).result_rows
    return sorted(subjects), f"ch:{max(latest, _position(cursor))}"
