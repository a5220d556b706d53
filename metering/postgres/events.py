"""Reading stored events back: the event lists (v1, and v2 with its cursor), what meters read from events, events
per subject, the subjects seen since a position (threshold notifications) and the fold's backlog.

An event's `seq` (its position in the store) is this backend's: it appears outside only inside opaque strings
(`StoredEvent.ref`, v2 cursors, `subjects_since` positions).
"""

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson
from django.db import connection
from psycopg import sql

from metering.event_store import EventFilter, EventPage, MeterReading, StoredEvent, json_fragment
from metering.filters import compile_filter_string, compile_filter_time
from metering.models import Meter, MeterAggregation
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.time import format_rfc3339, parse_rfc3339

EVENT_COLUMNS = "e.seq, e.id, e.source, e.type, e.subject, e.time, e.data::text, e.ingested_at"
# Re-read this many sequence numbers behind a `subjects_since` position: an ingest transaction that took a lower
# `seq` may commit after a higher one.
SEQ_OVERLAP = 1000


def _fetch_events(where: Sequence[sql.Composable], limit: int) -> list[StoredEvent]:
    """Values are quoted literals (no placeholders), as in metering/postgres/query.py."""
    query = sql.SQL("SELECT {} FROM metering_event e WHERE {} ORDER BY e.time DESC, e.seq DESC LIMIT {}").format(
        sql.SQL(EVENT_COLUMNS), sql.SQL(" AND ").join(where) if where else sql.SQL("TRUE"), sql.Literal(limit)
    )
    with connection.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    events = [
        StoredEvent(str(seq), event_id, source, type_, subject, time, json_fragment(data), ingested_at)
        for seq, event_id, source, type_, subject, time, data, ingested_at in rows
    ]
    errors = _validation_errors(events)
    return [StoredEvent(**{**e.__dict__, "validation_error": errors.get(int(e.ref))}) for e in events]


def events_list(*, filters: EventFilter) -> list[StoredEvent]:
    where = [sql.SQL("e.time >= {}").format(sql.Literal(filters.start))]
    for clause, value in (
        ("e.time < {}", filters.end),
        ("e.ingested_at >= {}", filters.ingested_from),
        ("e.ingested_at < {}", filters.ingested_to),
        ("strpos(e.id, {}) > 0", filters.id_contains),
        ("strpos(e.subject, {}) > 0", filters.subject_contains),
    ):
        if value is not None:
            where.append(sql.SQL(clause).format(sql.Literal(value)))
    if filters.subjects is not None:
        where.append(sql.SQL("e.subject = ANY({}::text[])").format(sql.Literal(list(filters.subjects))))
    return _fetch_events(where, filters.limit)


def _encode_cursor(event: StoredEvent) -> str:
    return base64.urlsafe_b64encode(f"{format_rfc3339(event.time)},{event.ref}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        time_text, seq_text = base64.urlsafe_b64decode(cursor.encode()).decode().rsplit(",", 1)
        return parse_rfc3339(time_text, "cursor"), int(seq_text)
    except (ValueError, binascii.Error, UnicodeDecodeError, InvalidInput) as exc:
        raise InvalidInput("cursor: invalid cursor") from exc


V2_STRING_FIELDS = {"id": "e.id", "source": "e.source", "subject": "e.subject", "type": "e.type"}
V2_TIME_FIELDS = {"time": "e.time", "ingestedAt": "e.ingested_at"}


def events_page(
    *, filter_spec: Mapping[str, Any], subjects: Sequence[str] | None, cursor: str | None, limit: int
) -> EventPage:
    """`events.listV2`: newest first; the cursor is the (time, seq) of the last event of the previous page."""
    where: list[sql.Composable] = []
    for name, spec in filter_spec.items():
        if spec is None:
            continue
        if name in V2_STRING_FIELDS:
            where.append(compile_filter_string(sql.SQL(V2_STRING_FIELDS[name]), spec, f"filter.{name}"))
        elif name in V2_TIME_FIELDS:
            where.append(compile_filter_time(sql.SQL(V2_TIME_FIELDS[name]), spec, f"filter.{name}"))
        else:
            raise InvalidInput(f"filter: unknown field {name!r}")
    if subjects is not None:
        where.append(sql.SQL("e.subject = ANY({}::text[])").format(sql.Literal(list(subjects))))
    if cursor:
        time, seq = _decode_cursor(cursor)
        where.append(sql.SQL("(e.time, e.seq) < ({}, {})").format(sql.Literal(time), sql.Literal(seq)))
    events = _fetch_events(where, limit)
    return EventPage(events, _encode_cursor(events[-1]) if len(events) == limit else None)


VALIDATION_SQL = """
SELECT e.seq, m.slug, m.aggregation, m.value_property,
       om_to_value(jsonb_path_query_first(e.data, m.value_property::jsonpath)) IS NOT NULL,
       om_to_text(jsonb_path_query_first(e.data, m.value_property::jsonpath)) IS NOT NULL
FROM metering_event e
JOIN metering_meter m ON m.event_type = e.type AND m.deleted_at IS NULL AND m.aggregation <> 'COUNT'
WHERE e.seq = ANY(%s)
"""


def _validation_errors(events: list[StoredEvent]) -> dict[int, str]:
    """The first problem of each event: no meter for its type, or a value a meter cannot read."""
    if not events:
        return {}
    types = set(Meter.objects.filter(deleted_at__isnull=True).values_list("event_type", flat=True))
    errors = {int(e.ref): f"no meter found for event type: {e.type}" for e in events if e.type not in types}
    with connection.cursor() as cur:
        cur.execute(VALIDATION_SQL, [[int(e.ref) for e in events if int(e.ref) not in errors]])
        for seq, slug, aggregation, path, is_number, is_scalar in cur.fetchall():
            ok = is_scalar if aggregation == MeterAggregation.UNIQUE_COUNT else is_number
            if not ok and seq not in errors:
                kind = "a string or number" if aggregation == MeterAggregation.UNIQUE_COUNT else "a number"
                errors[seq] = f"meter {slug}: value property {path} is missing or not {kind}"
    return errors


def event_readings(*, meter: Meter, refs: Sequence[str]) -> dict[str, MeterReading]:
    """The readings of some events (a page of the event browser) in one statement, as the meter's queries read them."""
    if not refs:
        return {}
    path = sql.SQL("jsonb_path_query_first(e.data, {}::jsonpath)")
    value_path = sql.Literal(meter.value_property or "$")
    value: sql.Composable
    if meter.aggregation == MeterAggregation.COUNT:
        value = sql.SQL("1::text")
    elif meter.aggregation == MeterAggregation.UNIQUE_COUNT:
        value = sql.SQL("om_to_text({})").format(path.format(value_path))
    else:
        value = sql.SQL("om_to_value({})::text").format(path.format(value_path))
    groups = sql.SQL(", ").join(
        sql.SQL("{}, om_to_text({})").format(sql.Literal(key), path.format(sql.Literal(json_path)))
        for key, json_path in sorted(meter.group_by.items())
    )
    query = sql.SQL("SELECT e.seq, {}, jsonb_build_object({})::text FROM metering_event e WHERE e.seq = ANY({})").format(
        value, groups, sql.Literal([int(ref) for ref in refs]))
    with connection.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    unique = meter.aggregation == MeterAggregation.UNIQUE_COUNT
    return {
        str(seq): MeterReading(value=text if unique or text is None else Decimal(text), groups=orjson.loads(group_json))
        for seq, text, group_json in rows
    }


def events_per_subject_since(start: dt.datetime) -> list[tuple[str, int]]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT subject, count(*) FROM metering_event WHERE time >= %s GROUP BY subject ORDER BY subject", [start]
        )
        return cur.fetchall()


def stream_position() -> str:
    """The highest seq stored."""
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(max(seq), 0) FROM metering_event")
        return str(cur.fetchone()[0])


def subjects_since(cursor: str | None) -> tuple[list[str], str]:
    """Subjects of the events with a seq above the position (re-reading `SEQ_OVERLAP` seqs behind it); the next
    position is the highest seq now stored."""
    position = int(cursor) if cursor else 0
    upto = int(stream_position())
    with connection.cursor() as cur:
        if upto <= position:
            return [], str(position)
        cur.execute(
            "SELECT DISTINCT subject FROM metering_event WHERE seq > %s AND seq <= %s",
            [max(position - SEQ_OVERLAP, 0), upto],
        )
        return [row[0] for row in cur.fetchall()], str(upto)


FOLD_BACKLOG_SQL = """
SELECT (SELECT count(*) FROM metering_pendingevent),
       (SELECT extract(epoch FROM now() - e.ingested_at) FROM metering_event e
        JOIN (SELECT seq, time FROM metering_pendingevent ORDER BY seq LIMIT 1) AS p ON e.seq = p.seq AND e.time = p.time)
"""


def fold_backlog() -> tuple[int, float]:
    """(events stored but not folded into rollups yet, age in seconds of the oldest of them; 0 when none)."""
    with connection.cursor() as cur:
        cur.execute(FOLD_BACKLOG_SQL)
        count, age = cur.fetchone()
    return count, max(float(age or 0), 0.0)


def events_after(seq: int, limit: int) -> list[tuple[Any, ...]]:
    """Up to `limit` stored events with a seq above `seq`, in seq order: (seq, source, id, type, subject, time,
    data as JSON text or None, ingested_at). For copying the store elsewhere."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT seq, source, id, type, subject, time, data::text, ingested_at FROM metering_event "
            "WHERE seq > %s ORDER BY seq LIMIT %s",
            [seq, limit],
        )
        return cur.fetchall()
