"""Meter queries (HOT PATH): one SQL aggregation, never a Python loop over events.

`run_query(spec)` is the one entry point for the API's meter query, entitlement balances and invoice usage.

For a meter whose rollups are complete it reads, in ONE statement (one snapshot, so every event is counted
exactly once):
  - rollup buckets (per-meter pre-aggregates, `metering/postgres/fold.py`) covering the minute-aligned part [A, B) of
    the range, at the coarsest resolution whose UTC buckets nest in the requested windows;
  - the raw tail: pending events (stored, not folded yet) in [A, B), values extracted on the fly;
  - the sub-minute edges [from, A) and [B, to) straight from the event table.
Every source is shaped like a rollup row, then folded: SUM/COUNT/MIN/MAX directly, AVG = sum/count,
LATEST = value at the max (time, seq), UNIQUE_COUNT = count(distinct uvalue).

That statement is prepared (HOT PATH: `meters.query` for one subject): its text depends only on the meter and
the query's shape (window, zone, groupBy, filters, which sources it reads), so it is composed once per process
and prepared once per database connection (`openmeter_site.core.sql`); what changes from call to call, the
subjects, the customers and the time pieces, goes in as parameters (the pieces as one JSON array).

`raw_query_sql` is the same query straight over the event table (JSON extracted per event), which `run_query`
runs while a meter's rollups are being rebuilt; `run_raw_query` runs it on its own, as the tests' reference and the
benchmark baseline.
"""

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from django.db import connection
from psycopg import sql

from metering.buckets import (
    DAY,
    END_OF_TIME,
    LAST_DAY,
    LAST_MINUTE,
    MINUTE,
    START_OF_TIME,
    ceil_to,
    decompose,
    floor_to,
    max_resolution,
)
from metering.event_store import RESERVED_GROUP_BY, QuerySpec, Row
from metering.filters import compile_filter_string
from metering.models import Meter, MeterAggregation, Rollup
from metering.postgres.store import shard_sql
from openmeter_site.core.sql import cached_statement, fetch_prepared

UTC = ZoneInfo("UTC")
EXACT = Context(prec=200)


# --- expressions over an event row `e` -------------------------------------------------------------------------


def group_column(meter: Meter, key: str) -> sql.Composable:
    """An event's value of one groupBy key (text, NULL when missing), extracted by `extracted_sql`."""
    return sql.Identifier("x", f"g{sorted(meter.group_by).index(key)}")


def groups_expr(meter: Meter) -> sql.Composable:
    """All of the meter's groupBy values of an event as one jsonb object (the rollup's `groups`)."""
    if not meter.group_by:
        return sql.SQL("'{}'::jsonb")
    pairs = [sql.SQL("{}, {}").format(sql.Literal(k), group_column(meter, k)) for k in sorted(meter.group_by)]
    return sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(pairs))


def eligible_sql(meter: Meter) -> sql.Composable:
    """Events (`e`, with their extracted values `x`) that count for the meter: its type, not before
    `eventFrom`, with a parsable value (a distinct value for UNIQUE_COUNT)."""
    parts: list[sql.Composable] = [sql.SQL("e.type = {}").format(sql.Literal(meter.event_type))]
    if meter.event_from is not None:
        parts.append(sql.SQL("e.time >= {}").format(sql.Literal(meter.event_from)))
    if meter.aggregation == MeterAggregation.UNIQUE_COUNT:
        parts.append(sql.SQL("x.u IS NOT NULL"))
    elif meter.aggregation != MeterAggregation.COUNT:
        parts.append(sql.SQL("x.v IS NOT NULL"))
    return sql.SQL(" AND ").join(parts)


def extracted_sql(meter: Meter) -> sql.Composable:
    """`CROSS JOIN LATERAL` the event's values, each JSONPath evaluated ONCE per event: `x.v` the meter's number
    (NULL when missing or not a number; COUNT and UNIQUE_COUNT have none), `x.u` the distinct value of
    UNIQUE_COUNT meters ('' otherwise) and `x.g0`, `x.g1`, … the groupBy values as text (keys sorted).

    Both OFFSET 0 stop PostgreSQL from inlining a subquery into its uses: om_to_value/om_to_text read their
    argument several times, and so do the queries read `x.*`. Columns a query does not read are not computed."""
    path = sql.SQL("jsonb_path_query_first(e.data, {}::jsonpath)")
    extract: list[sql.Composable] = []
    convert: list[sql.Composable] = []
    value_path = sql.Literal(meter.value_property or "$")
    if meter.aggregation in (MeterAggregation.COUNT, MeterAggregation.UNIQUE_COUNT):
        convert.append(sql.SQL("NULL::numeric AS v"))
    else:
        extract.append(path.format(value_path) + sql.SQL(" AS v"))
        convert.append(sql.SQL("om_to_value(j.v) AS v"))
    if meter.aggregation == MeterAggregation.UNIQUE_COUNT:
        extract.append(path.format(value_path) + sql.SQL(" AS u"))
        convert.append(sql.SQL("om_to_text(j.u) AS u"))
    else:
        convert.append(sql.SQL("''::text AS u"))
    for i, key in enumerate(sorted(meter.group_by)):
        extract.append(path.format(sql.Literal(meter.group_by[key])) + sql.SQL(f" AS g{i}"))
        convert.append(sql.SQL(f"om_to_text(j.g{i}) AS g{i}"))
    source = sql.SQL(" FROM (SELECT {} OFFSET 0) AS j").format(sql.SQL(", ").join(extract)) if extract else sql.SQL("")
    return sql.SQL("CROSS JOIN LATERAL (SELECT {}{} OFFSET 0) AS x").format(sql.SQL(", ").join(convert), source)


def events_as_rollups_sql(meter: Meter, source: sql.Composable, where: Sequence[sql.Composable]) -> sql.Composable:
    """The meter's events from `source` (aliased `e`) shaped like rollup rows: t, subject, groups, uvalue, sum,
    count, min, max, first_time, latest_time, latest_seq, latest_value."""
    return sql.SQL(
        "SELECT e.time AS t, e.subject AS subject, {groups} AS groups, x.u AS uvalue, x.v AS sum, 1::bigint AS count, "
        "x.v AS min, x.v AS max, e.time AS first_time, e.time AS latest_time, e.seq AS latest_seq, "
        "x.v AS latest_value FROM {source} {extracted} WHERE {where}"
    ).format(
        groups=groups_expr(meter),
        source=source,
        extracted=extracted_sql(meter),
        where=sql.SQL(" AND ").join([eligible_sql(meter), *where]),
    )


def raw_aggregate_sql(meter: Meter) -> sql.Composable:
    """Aggregate events (`e`, values `x`) directly; the same arithmetic as folding rollups (AVG = sum / count at
    the values' scale), so both paths give identical results."""
    agg = meter.aggregation
    if agg == MeterAggregation.SUM:
        return sql.SQL("sum(x.v)")
    if agg == MeterAggregation.COUNT:
        return sql.SQL("count(*)::numeric")
    if agg == MeterAggregation.AVG:
        return sql.SQL("sum(x.v) / NULLIF(count(*), 0)::numeric")
    if agg == MeterAggregation.MIN:
        return sql.SQL("min(x.v)")
    if agg == MeterAggregation.MAX:
        return sql.SQL("max(x.v)")
    if agg == MeterAggregation.LATEST:
        return sql.SQL("(array_agg(x.v ORDER BY e.time DESC, e.seq DESC))[1]")
    return sql.SQL("count(DISTINCT x.u)::numeric")


@dataclass(frozen=True)
class _Columns:
    """How the aggregating query reads its source: rollup-shaped rows (`src`) or raw events (`e`, `x`)."""

    time: sql.Composable
    first_time: sql.Composable
    last_time: sql.Composable
    subject: sql.Composable
    value: sql.Composable
    group: Any  # key -> expression of the group value

    @classmethod
    def rollups(cls, meter: Meter) -> "_Columns":
        return cls(
            time=sql.SQL("src.t"),
            first_time=sql.SQL("min(src.first_time)"),
            last_time=sql.SQL("max(src.latest_time)"),
            subject=sql.SQL("src.subject"),
            value=rollup_aggregate_sql(meter),
            group=lambda key: sql.SQL("(src.groups->>{})").format(sql.Literal(key)),
        )

    @classmethod
    def events(cls, meter: Meter) -> "_Columns":
        return cls(
            time=sql.SQL("e.time"),
            first_time=sql.SQL("min(e.time)"),
            last_time=sql.SQL("max(e.time)"),
            subject=sql.SQL("e.subject"),
            value=raw_aggregate_sql(meter),
            group=lambda key: group_column(meter, key),
        )


def rollup_aggregate_sql(meter: Meter) -> sql.Composable:
    """Fold rollup-shaped rows (columns of `src`) into the meter's value."""
    agg = meter.aggregation
    if agg == MeterAggregation.SUM:
        return sql.SQL("sum(src.sum)")
    if agg == MeterAggregation.COUNT:
        return sql.SQL("sum(src.count)::numeric")
    if agg == MeterAggregation.AVG:
        return sql.SQL("sum(src.sum) / NULLIF(sum(src.count), 0)::numeric")
    if agg == MeterAggregation.MIN:
        return sql.SQL("min(src.min)")
    if agg == MeterAggregation.MAX:
        return sql.SQL("max(src.max)")
    if agg == MeterAggregation.LATEST:
        return sql.SQL("(array_agg(src.latest_value ORDER BY src.latest_time DESC, src.latest_seq DESC))[1]")
    return sql.SQL("count(DISTINCT src.uvalue)::numeric")


def window_bounds_sql(column: sql.Composable, window_size: str, tz: ZoneInfo) -> tuple[sql.Composable, sql.Composable]:
    """Window start/end of a timestamptz column, computed in the requested time zone (DST-correct)."""
    unit = {"MINUTE": "minute", "HOUR": "hour", "DAY": "day", "MONTH": "month"}[window_size]
    local = sql.SQL("date_trunc({unit}, {col} AT TIME ZONE {tz})").format(
        unit=sql.Literal(unit), col=column, tz=sql.Literal(tz.key)
    )
    start = sql.SQL("({local} AT TIME ZONE {tz})").format(local=local, tz=sql.Literal(tz.key))
    end = sql.SQL("(({local} + {step}::interval) AT TIME ZONE {tz})").format(
        local=local, step=sql.Literal(f"1 {unit}"), tz=sql.Literal(tz.key)
    )
    return start, end


# --- the query ----------------------------------------------------------------------------------------------------


def _effective_start(spec: QuerySpec) -> dt.datetime | None:
    event_from = spec.meter.event_from
    if event_from is not None and (spec.start is None or spec.start < event_from):
        return event_from
    return spec.start


def _time_range_sql(column: sql.Composable, lo: dt.datetime | None, hi: dt.datetime | None) -> list[sql.Composable]:
    parts: list[sql.Composable] = []
    if lo is not None:
        parts.append(sql.SQL("{} >= {}").format(column, sql.Literal(lo)))
    if hi is not None:
        parts.append(sql.SQL("{} < {}").format(column, sql.Literal(hi)))
    return parts


def _aggregate_query(
    spec: QuerySpec,
    source: sql.Composable,
    cols: _Columns,
    keys: list[str],
    where: Sequence[sql.Composable],
    customers: sql.Composable,
) -> sql.Composed:
    """Aggregate `source` (rows matching `where`) into the result rows: windows, subject, customer, groupBy.
    `customers` is a jsonb object subject → customer id, looked up per row when the query groups by customer.
    A lookup, not a join: a join's plan depends on the planner's estimates of both sides, and with the tail
    estimated at a few rows and the customers at ten it once rescanned a 500,000-event tail per customer."""
    where = list(where)
    for key, values in sorted(spec.group_filters.items()):
        where.append(sql.SQL("{} = ANY({}::text[])").format(cols.group(key), sql.Literal(list(values))))
    for key, spec_filter in sorted(spec.advanced_filters.items()):
        where.append(compile_filter_string(cols.group(key), spec_filter, f"advancedMeterGroupByFilters.{key}"))

    # trim_scale: `12.5000000000000000000` → `12.5` (values are computed at scale 19); never rounds
    select: list[sql.Composable] = [sql.SQL("trim_scale({}) AS value").format(cols.value)]
    group: list[sql.Composable] = []
    if spec.window_size:
        unit = {"MINUTE": "minute", "HOUR": "hour", "DAY": "day", "MONTH": "month"}[spec.window_size]
        tz = sql.Literal(spec.time_zone.key)
        local = sql.SQL("date_trunc({}, {} AT TIME ZONE {})").format(sql.Literal(unit), cols.time, tz)
        # grouped by the local window start once; bounds converted back per group (DST-correct), and kept inside
        # the years 1 to 9999 (a window of a zone east or west of UTC may begin or end outside them)
        select += [
            sql.SQL("greatest(({} AT TIME ZONE {}), {})").format(local, tz, sql.Literal(START_OF_TIME)),
            sql.SQL("least((({} + {}::interval) AT TIME ZONE {}), {})").format(
                local, sql.Literal(f"1 {unit}"), tz, sql.Literal(END_OF_TIME)),
        ]
        group.append(local)
    else:
        select += [cols.first_time, cols.last_time]
    if "subject" in spec.group_by:
        select.append(cols.subject)
        group.append(cols.subject)
    else:
        select.append(sql.SQL("NULL::text"))
    if "customer_id" in spec.group_by:
        customer = sql.SQL("({} ->> {})").format(customers, cols.subject)
        where.append(sql.SQL("{} ? {}").format(customers, cols.subject))  # subjects of no listed customer: no row
        select.append(customer)
        group.append(customer)
    else:
        select.append(sql.SQL("NULL::text"))
    for key in keys:
        select.append(cols.group(key))
        group.append(cols.group(key))
    # HAVING: an aggregate without GROUP BY over no rows still yields a row (COUNT 0); no events, no row
    order = [sql.SQL(str(i)) for i in range(2, len(select) + 1)]
    return sql.SQL("SELECT {select} FROM {src}{where}{group} HAVING count(*) > 0 ORDER BY {order}").format(
        select=sql.SQL(", ").join(select),
        src=source,
        where=sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        group=sql.SQL(" GROUP BY ") + sql.SQL(", ").join(group) if group else sql.SQL(""),
        order=sql.SQL(", ").join(order),
    )


def _execute(spec: QuerySpec, query: sql.Composed, keys: list[str]) -> list[Row]:
    """Values are quoted literals (psycopg.sql.Literal), so the statement has no placeholders: a `%` inside a
    meter's JSONPath or event type needs no escaping. Results come in binary (see `_rows`)."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cur:
        cur.execute(query, binary=True, prepare=False)
        records = cur.fetchall()
    return _rows(spec, keys, records)


def _group_keys(spec: QuerySpec) -> list[str]:
    return [k for k in spec.group_by if k not in RESERVED_GROUP_BY]


def raw_query_sql(spec: QuerySpec) -> sql.Composed:
    """The query straight over the event table, extracting JSON per event."""
    meter = spec.meter
    source = sql.SQL("metering_event e {}").format(extracted_sql(meter))
    where = [eligible_sql(meter), *_time_range_sql(sql.SQL("e.time"), _effective_start(spec), spec.end)]
    if spec.subjects is not None:
        where.append(sql.SQL("e.subject = ANY({}::text[])").format(sql.Literal(list(spec.subjects))))
    customers = sql.SQL("{}::jsonb").format(sql.Literal(json.dumps(spec.subject_customers or {})))
    return _aggregate_query(spec, source, _Columns.events(meter), _group_keys(spec), where, customers)


def run_raw_query(spec: QuerySpec) -> list[Row]:
    """The naive path: every event of the range, JSON extracted per event (used while a meter is rebuilt)."""
    return _execute(spec, raw_query_sql(spec), _group_keys(spec))


# --- the prepared statement over rollups and the raw tail -------------------------------------------------------

# The statement's only placeholders, in a hand-written prefix (so no literal of the body holds a `%`): the
# subjects, the customers (a JSON object subject → customer id) and the pieces, one JSON array of
# {source, res (rollups), lo, hi}.
_PREFIX = """WITH params AS (
  SELECT %(subjects)s::text[] AS subjects, %(customers)s::jsonb AS customers, %(pieces)s::jsonb AS pieces),
pieces AS (SELECT t.*, params.subjects FROM params CROSS JOIN
           jsonb_to_recordset(params.pieces) AS t(source text, res int, lo timestamptz, hi timestamptz))
"""
_CUSTOMERS = sql.SQL("(SELECT customers FROM params)")
# Sources of the pieces: per-subject rollup rows, the all-subjects rollup rows (subject '', HOUR and DAY), the
# pending events and the event table (the sub-minute edges).
SOURCES = ("rollup", "rollup_all", "pending", "raw")


@dataclass(frozen=True)
class Statement:
    """The prepared meter query: its text and this call's parameters."""

    text: str
    params: dict[str, Any]


def _rollups_part(spec: QuerySpec, source: str) -> sql.Composable:
    subject = "subject = ''" if source == "rollup_all" else "subject <> ''"
    if spec.subjects is not None and source == "rollup":
        subject += " AND subject = ANY(piece.subjects)"
    return sql.SQL(
        "SELECT r.* FROM pieces AS piece CROSS JOIN LATERAL ("
        "SELECT bucket AS t, subject, groups, uvalue, sum, count, min, max, first_time, latest_time, latest_seq, "
        "latest_value FROM metering_rollup WHERE meter_id = {meter} AND resolution = piece.res "
        "AND bucket >= piece.lo AND bucket < piece.hi AND {subject} OFFSET 0) AS r WHERE piece.source = {source}"
    ).format(meter=sql.Literal(spec.meter.pk), subject=sql.SQL(subject), source=sql.Literal(source))


def _events_part(spec: QuerySpec, source: str) -> sql.Composable:
    where = [sql.SQL("e.time >= piece.lo AND e.time < piece.hi")]
    if source == "pending" and spec.subjects is None:
        where.append(sql.SQL("p.time >= piece.lo AND p.time < piece.hi"))
    if spec.subjects is not None:
        where.append(sql.SQL("e.subject = ANY(piece.subjects)"))
    table = _pending_source(spec) if source == "pending" else sql.SQL("metering_event e")
    return sql.SQL(
        "SELECT r.* FROM pieces AS piece CROSS JOIN LATERAL ({events} OFFSET 0) AS r WHERE piece.source = {source}"
    ).format(events=events_as_rollups_sql(spec.meter, table, where), source=sql.Literal(source))


def _statement_text(spec: QuerySpec, sources: Sequence[str]) -> str:
    """Composed once per process (`cached_statement`): the key is everything the text depends on."""
    meter = spec.meter
    key = [
        meter.pk, meter.aggregation, meter.event_type, meter.event_from, meter.value_property, meter.group_by,
        spec.window_size, spec.time_zone.key, list(spec.group_by), spec.group_filters, spec.advanced_filters,
        spec.subjects is not None, list(sources),
    ]

    def compose() -> sql.Composable:
        parts = [_rollups_part(spec, s) if s.startswith("rollup") else _events_part(spec, s) for s in sources]
        source = sql.SQL("({}) AS src").format(sql.SQL(" UNION ALL ").join(parts))
        return _aggregate_query(spec, source, _Columns.rollups(meter), _group_keys(spec), (), _CUSTOMERS)

    return cached_statement(key, _PREFIX, compose)


def _pieces(
    spec: QuerySpec,
    start: dt.datetime | None,
    a: dt.datetime | None,
    b: dt.datetime | None,
    end: dt.datetime | None,
    extent: tuple[dt.datetime, dt.datetime] | None,
    resolution: int,
) -> list[dict[str, Any]]:
    """What each source reads: rollup buckets over the extent (minutes, hours, whole days), the pending events
    over [A, B) and the event table over the sub-minute edges."""
    pieces: list[dict[str, Any]] = []

    def add(source: str, lo: dt.datetime | None, hi: dt.datetime | None, res: int | None = None) -> None:
        # an open bound is ±infinity (an event's time is always finite)
        pieces.append({"source": source, "res": res, "lo": lo.isoformat() if lo else "-infinity",
                       "hi": hi.isoformat() if hi else "infinity"})

    all_subjects = spec.subjects is None and not set(spec.group_by) & set(RESERVED_GROUP_BY)
    if extent:
        for res, lo, hi in decompose(*extent, resolution):
            use_all = all_subjects and res != Rollup.Resolution.MINUTE
            add("rollup_all" if use_all else "rollup", lo, hi, res)
        if b is None and extent[1] == LAST_MINUTE:  # the last minute of year 9999 (see `_rollup_extent`)
            add("rollup", LAST_MINUTE, None, Rollup.Resolution.MINUTE)
    add("pending", a, b)
    if start is not None and a is not None and start < a:
        add("raw", start, a)
    if end is not None and b is not None and b < end:
        add("raw", b, end)
    return pieces


def rollup_statement(spec: QuerySpec) -> Statement | sql.Composed | None:
    """What `run_query` runs: the prepared statement over rollups and the raw tail, the raw query (a composed
    statement) while the meter is rebuilt or when buckets cannot serve the range, or None for an empty range.
    Also for EXPLAIN in benchmarks."""
    meter = spec.meter
    # read fresh unless the caller just did: a meter held from before a rebuild started has no rollups meanwhile
    if (meter.backfill_cursor is not None) if spec.fresh_meter else _being_rebuilt(meter):
        return raw_query_sql(spec)
    start, end = _effective_start(spec), spec.end
    if start is not None and end is not None and start >= end:
        return None
    if start is not None and start > LAST_MINUTE:  # less than a whole minute before the end of year 9999
        return raw_query_sql(spec)
    a = ceil_to(start, MINUTE) if start is not None else None
    b = floor_to(end, MINUTE) if end is not None else None
    if a is not None and b is not None and a >= b:  # less than a whole minute: raw events only
        return raw_query_sql(spec)
    extent = _rollup_extent(meter, a, b)
    resolution = max_resolution(spec.window_size, spec.time_zone, *extent) if extent else Rollup.Resolution.MINUTE
    if resolution is None:  # an offset that is not a whole minute (LMT-era zones): buckets never nest
        return raw_query_sql(spec)
    pieces = _pieces(spec, start, a, b, end, extent, resolution)
    sources = [s for s in SOURCES if any(p["source"] == s for p in pieces)]
    params = {
        "subjects": list(spec.subjects or ()),
        "customers": json.dumps(spec.subject_customers or {}),
        "pieces": json.dumps(pieces),
    }
    return Statement(_statement_text(spec, sources), params)


def _being_rebuilt(meter: Meter) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT backfill_cursor IS NOT NULL FROM metering_meter WHERE id = %s", [meter.pk])
        row = cur.fetchone()
    return row is not None and row[0]


def run_query(spec: QuerySpec) -> list[Row]:
    """Rollups + raw tail when the meter's rollups are complete, else the raw query."""
    statement = rollup_statement(spec)
    if statement is None:
        return []
    if isinstance(statement, Statement):
        return _rows(spec, _group_keys(spec), fetch_prepared(statement.text, statement.params, binary=True))
    return _execute(spec, statement, _group_keys(spec))


# Pending events by their events (the planner may start from a subject's events): the queue's key is (shard, seq).
PENDING_JOIN = (
    f"metering_event e JOIN metering_pendingevent p ON p.shard = {shard_sql('e.subject')} AND p.seq = e.seq "
    "AND p.time = e.time"
)


def _pending_source(spec: QuerySpec) -> sql.Composable:
    """Pending events joined to their rows (by seq and time: one partition each, pruned at run time). With a
    subject filter the planner may start from the subject's events (index on subject, time); without one, always
    from the pending queue, looked up by seq: the queue is short, its statistics are often stale, and a hash join
    would scan every event in the range. Only the queue's events inside the piece (`piece`, the queue has their
    times) are looked up."""
    if spec.subjects is not None:
        return sql.SQL(PENDING_JOIN)
    return sql.SQL(
        "metering_pendingevent p CROSS JOIN LATERAL "
        "(SELECT * FROM metering_event e WHERE e.seq = p.seq AND e.time = p.time OFFSET 0) AS e"
    )


def _rollup_extent(meter: Meter, a: dt.datetime | None, b: dt.datetime | None) -> tuple[dt.datetime, dt.datetime] | None:
    """[A, B) with open bounds closed by the meter's first and last day buckets; None when nothing is folded. A last
    bucket on the last day of year 9999 closes it at that day's last minute, which `_pieces` reads apart (the
    day's end is in the year 10000)."""
    if a is not None and b is not None:
        return a, b
    with connection.cursor() as cur:
        cur.execute(
            "SELECT min(bucket), max(bucket) FROM metering_rollup WHERE meter_id = %s AND resolution = %s",
            [meter.pk, Rollup.Resolution.DAY],
        )
        first, last = cur.fetchone()
    if first is None:
        return None
    lo = a if a is not None else first
    hi = b if b is not None else last + DAY if last < LAST_DAY else LAST_MINUTE
    return (lo, hi) if lo < hi or hi == LAST_MINUTE else None


def _rows(spec: QuerySpec, keys: list[str], records: list[tuple[Any, ...]]) -> list[Row]:
    """Records are (value, window start, window end, subject, customer id, *group values); NULL values are
    windows whose events had no value for the aggregation (e.g. MIN over non-numbers): no row."""
    if spec.window_size:
        return [Row(r[0], r[1], r[2], r[3], r[4], dict(zip(keys, r[5:], strict=True))) for r in records if r[0] is not None]
    start, end = spec.start, spec.end
    return [
        Row(
            r[0],
            start or _floor_minute(r[1]),
            end or _minute_after(r[2]),
            r[3],
            r[4],
            dict(zip(keys, r[5:], strict=True)),
        )
        for r in records
        if r[0] is not None
    ]


def _floor_minute(value: dt.datetime) -> dt.datetime:
    return value.replace(second=0, microsecond=0)


def _minute_after(value: dt.datetime) -> dt.datetime:
    """The end of the minute of `value`; in the last minute of year 9999, its last instant."""
    return _floor_minute(value) + MINUTE if value < LAST_MINUTE else END_OF_TIME


def meter_usage(
    *,
    meter: Meter,
    subjects: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    group_filters: Mapping[str, Sequence[str]] | None = None,
) -> Decimal:
    """Total of a meter for some subjects over [start, end): what entitlements and invoice lines bill."""
    if not subjects or start >= end:
        return Decimal(0)
    rows = run_query(QuerySpec(meter=meter, start=start, end=end, subjects=subjects, group_filters=group_filters or {}))
    total = Decimal(0)
    for row in rows:
        total = EXACT.add(total, row.value)  # the default context would round to 28 digits
    return total


def meter_usage_by_customer(
    *,
    meter: Meter,
    subject_customers: Mapping[str, str],
    start: dt.datetime,
    end: dt.datetime,
    group_filters: Mapping[str, Sequence[str]] | None = None,
    advanced_filters: Mapping[str, Any] | None = None,
) -> dict[str, Decimal]:
    """Batched form for invoice runs: one query for many customers (subject → customer id), total per customer.
    Correct for every aggregation, since events are grouped by customer before aggregating."""
    if not subject_customers or start >= end:
        return {}
    spec = QuerySpec(
        meter=meter,
        start=start,
        end=end,
        subjects=list(subject_customers),
        group_by=("customer_id",),
        group_filters=group_filters or {},
        subject_customers=subject_customers,
        advanced_filters=advanced_filters or {},
    )
    return {r.customer_id: r.value for r in run_query(spec) if r.customer_id is not None}
