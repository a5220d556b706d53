"""Read queries shared by the API, the admin and other apps."""

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from django.db import connection
from django.db.models import QuerySet
from psycopg import sql

from customers.models import Customer, CustomerSubject
from metering.filters import compile_filter_string, compile_filter_time
from metering.models import Meter, MeterAggregation
from openmeter_site.core.errors import InvalidInput, NotFound
from openmeter_site.core.ids import is_ulid
from openmeter_site.core.sql import fetch_prepared
from openmeter_site.core.time import format_rfc3339, parse_rfc3339

# --- meters ---------------------------------------------------------------------------------------------------------


_METER_FIELDS = list(Meter._meta.concrete_fields)
_METER_COLUMNS = [f.column for f in _METER_FIELDS if f.column is not None]  # all of them: concrete fields have one
_METER_SQL = (
    f"SELECT {', '.join(_METER_COLUMNS)} FROM metering_meter "
    "WHERE deleted_at IS NULL AND (slug = %(slug)s OR id = %(id)s) ORDER BY slug LIMIT 1"
)


def meter_get(*, id_or_slug: str) -> Meter:
    """A live meter by ULID or slug. A prepared statement: every meter endpoint starts here, and compiling the ORM
    query costs more than running it."""
    pk = id_or_slug.upper() if is_ulid(id_or_slug) else None
    rows = fetch_prepared(_METER_SQL, {"slug": id_or_slug, "id": pk})
    if not rows:
        raise NotFound(f"meter not found: {id_or_slug}")
    values = []
    for f, value in zip(_METER_FIELDS, rows[0], strict=True):
        for convert in f.get_db_converters(connection):  # JSON columns arrive as text
            value = convert(value, f, connection)
        values.append(value)
    return Meter.from_db(connection.alias, [f.attname for f in _METER_FIELDS], values)


def meter_list_qs(*, include_deleted: bool = False) -> QuerySet[Meter]:
    qs = Meter.objects.all()
    return qs if include_deleted else qs.filter(deleted_at__isnull=True)


# --- customers (usage attribution: customer key + usageAttribution.subjectKeys) --------------------------------------


def subject_customers_for(*, customer_ids: Sequence[str]) -> dict[str, str]:
    """subject → customer id for the given live customers; an unknown id is a 400."""
    customers = {c.pk: c for c in Customer.objects.filter(pk__in=customer_ids, deleted_at__isnull=True)}
    missing = [c for c in customer_ids if c not in customers]
    if missing:
        raise InvalidInput(f"customer not found: {', '.join(missing)}")
    mapping = {c.key: c.pk for c in customers.values() if c.key}
    mapping.update(
        CustomerSubject.objects.filter(customer_id__in=customers, deleted_at__isnull=True).values_list(
            "subject_key", "customer_id"
        )
    )
    return mapping


def customers_of_subjects(subjects: Iterable[str]) -> dict[str, str]:
    """subject → id of the live customer it is attributed to (explicit subject keys win over customer keys)."""
    keys = list(set(subjects))
    if not keys:
        return {}
    mapping = {
        key: pk
        for key, pk in Customer.objects.filter(key__in=keys, deleted_at__isnull=True).values_list("key", "pk")
        if key is not None  # always, given key__in; the column is nullable
    }
    mapping.update(
        CustomerSubject.objects.filter(
            subject_key__in=keys, deleted_at__isnull=True, customer__deleted_at__isnull=True
        ).values_list("subject_key", "customer_id")
    )
    return mapping


# --- events ---------------------------------------------------------------------------------------------------------

MAX_LOOKBACK = dt.timedelta(days=32)
DEFAULT_LOOKBACK = dt.timedelta(hours=72)
EVENT_COLUMNS = "e.seq, e.id, e.source, e.type, e.subject, e.time, e.data::text, e.ingested_at"


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    id: str
    source: str
    type: str
    subject: str
    time: dt.datetime
    data: orjson.Fragment | None  # the event's `data` as JSON text
    ingested_at: dt.datetime
    customer_id: str | None = None
    validation_error: str | None = None


@dataclass(frozen=True)
class EventFilter:
    """`events.list` parameters (event time range, ingestion time range, partial id/subject, customers)."""

    start: dt.datetime
    end: dt.datetime | None = None
    ingested_from: dt.datetime | None = None
    ingested_to: dt.datetime | None = None
    id_contains: str | None = None
    subject_contains: str | None = None
    customer_ids: Sequence[str] = ()
    limit: int = 100


def _fetch_events(where: Sequence[sql.Composable], limit: int) -> list[StoredEvent]:
    """Values are quoted literals (no placeholders), as in metering/postgres/query.py."""
    query = sql.SQL("SELECT {} FROM metering_event e WHERE {} ORDER BY e.time DESC, e.seq DESC LIMIT {}").format(
        sql.SQL(EVENT_COLUMNS), sql.SQL(" AND ").join(where) if where else sql.SQL("TRUE"), sql.Literal(limit)
    )
    with connection.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    return _annotate([
        StoredEvent(seq, event_id, source, type_, subject, time, _json_fragment(data), ingested_at)
        for seq, event_id, source, type_, subject, time, data, ingested_at in rows
    ])


def _json_fragment(text: str | None) -> orjson.Fragment | None:
    """Event data as PostgreSQL wrote it (exact numbers), embedded as is in the JSON response."""
    return orjson.Fragment(text) if text is not None else None


def event_list(*, filters: EventFilter, now: dt.datetime) -> list[StoredEvent]:
    if filters.start < now - MAX_LOOKBACK:
        raise InvalidInput("from: must be within the last 32 days")
    if filters.ingested_from is not None and filters.ingested_from < now - MAX_LOOKBACK:
        raise InvalidInput("ingestedAtFrom: must be within the last 32 days")
    if filters.end is not None and filters.end < filters.start:
        raise InvalidInput("to: must not be before from")
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
    if filters.customer_ids:
        subjects = list(subject_customers_for(customer_ids=filters.customer_ids))
        where.append(sql.SQL("e.subject = ANY({}::text[])").format(sql.Literal(subjects)))
    return _fetch_events(where, filters.limit)


def encode_cursor(event: StoredEvent) -> str:
    return base64.urlsafe_b64encode(f"{format_rfc3339(event.time)},{event.seq}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        time_text, seq_text = base64.urlsafe_b64decode(cursor.encode()).decode().rsplit(",", 1)
        return parse_rfc3339(time_text, "cursor"), int(seq_text)
    except (ValueError, binascii.Error, UnicodeDecodeError, InvalidInput) as exc:
        raise InvalidInput("cursor: invalid cursor") from exc


V2_STRING_FIELDS = {"id": "e.id", "source": "e.source", "subject": "e.subject", "type": "e.type"}
V2_TIME_FIELDS = {"time": "e.time", "ingestedAt": "e.ingested_at"}


def event_list_v2(*, filter_spec: dict[str, Any], cursor: str | None, limit: int) -> list[StoredEvent]:
    """`events.listV2`: newest first; `cursor` is the (time, seq) of the last event of the previous page."""
    where: list[sql.Composable] = []
    for name, spec in filter_spec.items():
        if spec is None:
            continue
        if name in V2_STRING_FIELDS:
            where.append(compile_filter_string(sql.SQL(V2_STRING_FIELDS[name]), spec, f"filter.{name}"))
        elif name in V2_TIME_FIELDS:
            where.append(compile_filter_time(sql.SQL(V2_TIME_FIELDS[name]), spec, f"filter.{name}"))
        elif name == "customerId":
            ids = spec.get("$in") if isinstance(spec, dict) else None
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise InvalidInput('filter.customerId: expected {"$in": [customer ids]}')
            subjects = list(subject_customers_for(customer_ids=ids))
            where.append(sql.SQL("e.subject = ANY({}::text[])").format(sql.Literal(subjects)))
        else:
            raise InvalidInput(f"filter: unknown field {name!r}")
    if cursor:
        time, seq = decode_cursor(cursor)
        where.append(sql.SQL("(e.time, e.seq) < ({}, {})").format(sql.Literal(time), sql.Literal(seq)))
    return _fetch_events(where, limit)


def _annotate(events: list[StoredEvent]) -> list[StoredEvent]:
    """Add the owning customer and the read-time validation error against the live meters."""
    if not events:
        return events
    customers = customers_of_subjects(e.subject for e in events)
    errors = _validation_errors(events)
    return [
        StoredEvent(**{**e.__dict__, "customer_id": customers.get(e.subject), "validation_error": errors.get(e.seq)})
        for e in events
    ]


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
    types = set(Meter.objects.filter(deleted_at__isnull=True).values_list("event_type", flat=True))
    errors = {e.seq: f"no meter found for event type: {e.type}" for e in events if e.type not in types}
    with connection.cursor() as cur:
        cur.execute(VALIDATION_SQL, [[e.seq for e in events if e.seq not in errors]])
        for seq, slug, aggregation, path, is_number, is_scalar in cur.fetchall():
            ok = is_scalar if aggregation == MeterAggregation.UNIQUE_COUNT else is_number
            if not ok and seq not in errors:
                kind = "a string or number" if aggregation == MeterAggregation.UNIQUE_COUNT else "a number"
                errors[seq] = f"meter {slug}: value property {path} is missing or not {kind}"
    return errors


@dataclass(frozen=True)
class MeterReading:
    """What a meter reads from one event: its value (None when the event has none, so the meter skips it; UNIQUE_COUNT
    meters read the distinct value as text) and its group-by values."""

    value: Decimal | str | None
    groups: dict[str, str | None]


def event_meter_readings(*, meter: Meter, seqs: Sequence[int]) -> dict[int, MeterReading]:
    """The readings of some events (a page of the event browser) in one statement, as the meter's queries read them."""
    if not seqs:
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
        value, groups, sql.Literal(list(seqs)))
    with connection.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    unique = meter.aggregation == MeterAggregation.UNIQUE_COUNT
    return {
        seq: MeterReading(value=text if unique or text is None else Decimal(text), groups=orjson.loads(group_json))
        for seq, text, group_json in rows
    }


# --- debug metrics --------------------------------------------------------------------------------------------------


def events_per_subject_since(start: dt.datetime) -> list[tuple[str, int]]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT subject, count(*) FROM metering_event WHERE time >= %s GROUP BY subject ORDER BY subject", [start]
        )
        return cur.fetchall()


# --- the fold's lag (operators watch it on /metrics) ----------------------------------------------------------------

FOLD_BACKLOG_SQL = """
SELECT (SELECT count(*) FROM metering_pendingevent),
       (SELECT extract(epoch FROM now() - e.ingested_at) FROM metering_event e
        WHERE e.seq = (SELECT min(seq) FROM metering_pendingevent))
"""


def fold_backlog() -> tuple[int, float]:
    """(events stored but not folded into rollups yet, age in seconds of the oldest of them; 0 when none)."""
    with connection.cursor() as cur:
        cur.execute(FOLD_BACKLOG_SQL)
        count, age = cur.fetchone()
    return count, max(float(age or 0), 0.0)
