"""Meter queries (HOT PATH): one SQL aggregation, never a Python loop over events.

`run_query(spec)` is the one entry point for the API's meter query, entitlement balances and invoice usage.

For a meter whose rollups are complete it reads, in ONE statement (one snapshot, so every event is counted
exactly once):
  - rollup buckets (per-meter pre-aggregates, `metering/rollups.py`) covering the minute-aligned part [A, B) of
    the range, at the coarsest resolution whose UTC buckets nest in the requested windows;
  - the raw tail: pending events (stored, not folded yet) in [A, B), values extracted on the fly;
  - the sub-minute edges [from, A) and [B, to) straight from the event table.
Every source is shaped like a rollup row, then folded: SUM/COUNT/MIN/MAX directly, AVG = sum/count,
LATEST = value at the max (time, seq), UNIQUE_COUNT = count(distinct uvalue).

`run_raw_query` is the same query straight over the event table (JSON extracted per event): used while a
meter's rollups are being rebuilt, and as the benchmark baseline.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from psycopg import sql

from metering.filters import compile_filter_string
from metering.models import Meter, MeterAggregation, Rollup

UTC = ZoneInfo("UTC")
RESERVED_GROUP_BY = ("subject", "customer_id")
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
EXACT = Context(prec=200)
UTC_ZONE_KEYS = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu", "GMT", "Etc/GMT"}


@dataclass(frozen=True)
class QuerySpec:
    meter: Meter
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    window_size: str | None = None
    time_zone: ZoneInfo = UTC
    subjects: Sequence[str] | None = None
    group_by: Sequence[str] = ()
    # groupBy key → allowed values (exact match; `filterGroupBy` and feature filters)
    group_filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # subject → customer id, when the query groups or filters by customer
    subject_customers: Mapping[str, str] | None = None
    # groupBy key → FilterString object (`advancedMeterGroupByFilters`)
    advanced_filters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    value: Decimal
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    subject: str | None
    customer_id: str | None
    group_by: dict[str, str | None]


# --- expressions over an event row `e` -------------------------------------------------------------------------


def value_expr(meter: Meter, alias: str = "e") -> sql.Composable:
    """The meter's numeric value of an event (NULL when missing or not a number); COUNT meters have none."""
    if meter.aggregation == MeterAggregation.COUNT:
        return sql.SQL("NULL::numeric")
    if meter.aggregation == MeterAggregation.UNIQUE_COUNT:
        return sql.SQL("NULL::numeric")
    return sql.SQL("om_to_value(jsonb_path_query_first({}.data, {}::jsonpath))").format(
        sql.Identifier(alias), sql.Literal(meter.value_property or "$")
    )


def uvalue_expr(meter: Meter, alias: str = "e") -> sql.Composable:
    """The distinct value of an event for UNIQUE_COUNT meters ('' for other aggregations)."""
    if meter.aggregation != MeterAggregation.UNIQUE_COUNT:
        return sql.SQL("''::text")
    return sql.SQL("om_to_text(jsonb_path_query_first({}.data, {}::jsonpath))").format(
        sql.Identifier(alias), sql.Literal(meter.value_property or "$")
    )


def group_value_expr(meter: Meter, key: str, alias: str = "e") -> sql.Composable:
    return sql.SQL("om_to_text(jsonb_path_query_first({}.data, {}::jsonpath))").format(
        sql.Identifier(alias), sql.Literal(meter.group_by[key])
    )


def groups_expr(meter: Meter, alias: str = "e") -> sql.Composable:
    """All of the meter's groupBy values of an event as one jsonb object (the rollup's `groups`)."""
    if not meter.group_by:
        return sql.SQL("'{}'::jsonb")
    pairs = [sql.SQL("{}, {}").format(sql.Literal(k), group_value_expr(meter, k, alias)) for k in sorted(meter.group_by)]
    return sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(pairs))


def eligible_sql(meter: Meter, alias: str = "e") -> sql.Composable:
    """Events that count for the meter: its type, not before `eventFrom`, with a parsable value."""
    parts = [sql.SQL("{}.type = {}").format(sql.Identifier(alias), sql.Literal(meter.event_type))]
    if meter.event_from is not None:
        parts.append(sql.SQL("{}.time >= {}").format(sql.Identifier(alias), sql.Literal(meter.event_from)))
    if meter.aggregation == MeterAggregation.UNIQUE_COUNT:
        parts.append(sql.SQL("{} IS NOT NULL").format(uvalue_expr(meter, alias)))
    elif meter.aggregation != MeterAggregation.COUNT:
        parts.append(sql.SQL("{} IS NOT NULL").format(value_expr(meter, alias)))
    return sql.SQL(" AND ").join(parts)


def event_as_rollup_sql(meter: Meter, alias: str = "e") -> sql.Composable:
    """An event shaped like a rollup row: t, subject, groups, uvalue, sum, count, min, max, first/latest."""
    v = value_expr(meter, alias)
    e = sql.Identifier(alias)
    return sql.SQL(
        "{e}.time AS t, {e}.subject AS subject, {groups} AS groups, {u} AS uvalue, {v} AS sum, 1::bigint AS count, "
        "{v} AS min, {v} AS max, {e}.time AS first_time, {e}.time AS latest_time, {e}.seq AS latest_seq, "
        "{v} AS latest_value"
    ).format(e=e, groups=groups_expr(meter, alias), u=uvalue_expr(meter, alias), v=v)


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


def _outer_query(spec: QuerySpec, source: sql.Composable, keys: list[str]) -> sql.Composable:
    """Aggregate rollup-shaped rows of `source` into the result rows (windows, subject, customer, groups)."""
    where: list[sql.Composable] = []
    if spec.subjects is not None:
        where.append(sql.SQL("src.subject = ANY({}::text[])").format(sql.Literal(list(spec.subjects))))
    for key, values in sorted(spec.group_filters.items()):
        where.append(sql.SQL("(src.groups->>{}) = ANY({}::text[])").format(sql.Literal(key), sql.Literal(list(values))))
    for key, spec_filter in sorted(spec.advanced_filters.items()):
        expr = sql.SQL("(src.groups->>{})").format(sql.Literal(key))
        where.append(compile_filter_string(expr, spec_filter, f"advancedMeterGroupByFilters.{key}"))

    select: list[sql.Composable] = [sql.SQL("{} AS value").format(rollup_aggregate_sql(spec.meter))]
    group: list[sql.Composable] = []
    if spec.window_size:
        ws, we = window_bounds_sql(sql.SQL("src.t"), spec.window_size, spec.time_zone)
        select += [ws, we]
        group += [sql.SQL("2"), sql.SQL("3")]
    else:
        select += [sql.SQL("min(src.first_time)"), sql.SQL("max(src.latest_time)")]
    from_sql = sql.SQL("({}) AS src").format(source)
    if "subject" in spec.group_by:
        select.append(sql.SQL("src.subject"))
        group.append(sql.SQL("src.subject"))
    else:
        select.append(sql.SQL("NULL::text"))
    if "customer_id" in spec.group_by:
        mapping = spec.subject_customers or {}
        customers = sql.SQL("unnest({}::text[], {}::text[]) AS c(subject, customer_id)").format(
            sql.Literal(list(mapping.keys())), sql.Literal(list(mapping.values()))
        )
        from_sql = sql.SQL("{} JOIN {} ON c.subject = src.subject").format(from_sql, customers)
        select.append(sql.SQL("c.customer_id"))
        group.append(sql.SQL("c.customer_id"))
    else:
        select.append(sql.SQL("NULL::text"))
    for key in keys:
        expr = sql.SQL("(src.groups->>{})").format(sql.Literal(key))
        select.append(expr)
        group.append(expr)
    # HAVING: an aggregate without GROUP BY over no rows still yields a row (COUNT 0); no events, no row
    order = [sql.SQL(str(i)) for i in range(2, len(select) + 1)]
    return sql.SQL("SELECT {select} FROM {src}{where}{group} HAVING count(*) > 0 ORDER BY {order}").format(
        select=sql.SQL(", ").join(select),
        src=from_sql,
        where=sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        group=sql.SQL(" GROUP BY ") + sql.SQL(", ").join(group) if group else sql.SQL(""),
        order=sql.SQL(", ").join(order),
    )


def _execute(spec: QuerySpec, query: sql.Composable, keys: list[str]) -> list[Row]:
    """Values are quoted literals (psycopg.sql.Literal), so the statement has no placeholders: a `%` inside a
    meter's JSONPath or event type needs no escaping."""
    with connection.cursor() as cur:
        cur.execute(query)
        records = cur.fetchall()
    return _rows(spec, keys, records)


def _group_keys(spec: QuerySpec) -> list[str]:
    return [k for k in spec.group_by if k not in RESERVED_GROUP_BY]


def run_raw_query(spec: QuerySpec) -> list[Row]:
    """The query straight over the event table, extracting JSON per event."""
    meter = spec.meter
    where = [eligible_sql(meter)]
    where += _time_range_sql(sql.SQL("e.time"), _effective_start(spec), spec.end)
    if spec.subjects is not None:  # also filtered outside; here so the subject index is used
        where.append(sql.SQL("e.subject = ANY({}::text[])").format(sql.Literal(list(spec.subjects))))
    source = sql.SQL("SELECT {} FROM metering_event e WHERE {}").format(
        event_as_rollup_sql(meter), sql.SQL(" AND ").join(where)
    )
    keys = _group_keys(spec)
    return _execute(spec, _outer_query(spec, source, keys), keys)


def run_query(spec: QuerySpec) -> list[Row]:
    """Rollups + raw tail when the meter's rollups are complete, else the raw query."""
    meter = spec.meter
    if meter.backfill_cursor is not None:
        return run_raw_query(spec)
    start, end = _effective_start(spec), spec.end
    if start is not None and end is not None and start >= end:
        return []
    a = _ceil(start, MINUTE) if start is not None else None
    b = _floor(end, MINUTE) if end is not None else None
    if a is not None and b is not None and a >= b:  # less than a whole minute: raw events only
        return run_raw_query(spec)
    extent = _rollup_extent(meter, a, b)
    resolution = _max_resolution(spec, *extent) if extent else Rollup.Resolution.MINUTE
    if resolution is None:  # an offset that is not a whole minute (LMT-era zones): buckets never nest
        return run_raw_query(spec)

    parts: list[sql.Composable] = []
    if extent:
        parts += _rollup_parts(meter, resolution, *extent)
    tail = [sql.SQL("e.seq = p.seq"), eligible_sql(meter)]
    tail += _time_range_sql(sql.SQL("e.time"), a, b)
    parts.append(
        sql.SQL("SELECT {} FROM metering_pendingevent p JOIN metering_event e ON {}").format(
            event_as_rollup_sql(meter), sql.SQL(" AND ").join(tail)
        )
    )
    for lo, hi in _edges(start, a, b, end):
        edge = [eligible_sql(meter), *_time_range_sql(sql.SQL("e.time"), lo, hi)]
        edge_sql = sql.SQL("SELECT {} FROM metering_event e WHERE {}")
        parts.append(edge_sql.format(event_as_rollup_sql(meter), sql.SQL(" AND ").join(edge)))
    source = sql.SQL(" UNION ALL ").join(parts)
    keys = _group_keys(spec)
    return _execute(spec, _outer_query(spec, source, keys), keys)


def _edges(start, a, b, end) -> list[tuple[dt.datetime, dt.datetime]]:
    """The sub-minute pieces [start, A) and [B, end) that minute buckets cannot represent."""
    edges = []
    if start is not None and start < a:
        edges.append((start, a))
    if end is not None and b < end:
        edges.append((b, end))
    return edges


def _rollup_extent(meter: Meter, a: dt.datetime | None, b: dt.datetime | None) -> tuple[dt.datetime, dt.datetime] | None:
    """[A, B) with open bounds closed by the meter's first and last day buckets; None when nothing is folded."""
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
    hi = b if b is not None else last + DAY
    return (lo, hi) if lo < hi else None


def _offsets(tz: ZoneInfo, a: dt.datetime, b: dt.datetime) -> set[dt.timedelta]:
    """UTC offsets the zone uses over [a, b), sampled daily (weekly past three years): offsets last months."""
    step = DAY if b - a <= 3 * 366 * DAY else 7 * DAY
    offsets = set()
    moment = a
    while moment < b:
        offsets.add(moment.astimezone(tz).utcoffset())
        moment += step
    offsets.add((b - MINUTE).astimezone(tz).utcoffset())
    return offsets


def _max_resolution(spec: QuerySpec, a: dt.datetime, b: dt.datetime) -> int | None:
    """The coarsest rollup resolution whose UTC buckets lie wholly inside one requested window."""
    if spec.window_size is None:
        return Rollup.Resolution.DAY
    offsets = {dt.timedelta(0)} if spec.time_zone.key in UTC_ZONE_KEYS else _offsets(spec.time_zone, a, b)
    if any(o % MINUTE for o in offsets):
        return None
    if spec.window_size == "MINUTE":
        return Rollup.Resolution.MINUTE
    if spec.window_size != "HOUR" and offsets == {dt.timedelta(0)}:
        return Rollup.Resolution.DAY
    if all(o % HOUR == dt.timedelta(0) for o in offsets):
        return Rollup.Resolution.HOUR
    return Rollup.Resolution.MINUTE


def decompose(a: dt.datetime, b: dt.datetime, resolution: int) -> list[tuple[int, dt.datetime, dt.datetime]]:
    """Split minute-aligned [a, b) into (resolution, lo, hi) pieces: minutes, then hours, then whole days."""
    if a >= b:
        return []
    if resolution == Rollup.Resolution.MINUTE:
        return [(Rollup.Resolution.MINUTE, a, b)]
    unit = DAY if resolution == Rollup.Resolution.DAY else HOUR
    lo, hi = _ceil(a, unit), _floor(b, unit)
    if lo >= hi:
        return decompose(a, b, resolution - 1)
    return [*decompose(a, lo, resolution - 1), (resolution, lo, hi), *decompose(hi, b, resolution - 1)]


def _rollup_parts(meter: Meter, resolution: int, a: dt.datetime, b: dt.datetime) -> list[sql.Composable]:
    parts = []
    for res, lo, hi in decompose(a, b, resolution):
        parts.append(
            sql.SQL(
                "SELECT bucket AS t, subject, groups, uvalue, sum, count, min, max, first_time, latest_time, "
                "latest_seq, latest_value FROM metering_rollup "
                "WHERE meter_id = {meter} AND resolution = {res} AND bucket >= {lo} AND bucket < {hi}"
            ).format(
                meter=sql.Literal(meter.pk),
                res=sql.Literal(res),
                lo=sql.Literal(lo),
                hi=sql.Literal(hi),
            )
        )
    return parts


def _floor(value: dt.datetime, unit: dt.timedelta) -> dt.datetime:
    """Floor to a whole unit (minute, hour or UTC day)."""
    value = value.astimezone(dt.UTC)
    midnight = value.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((value - midnight) // unit) * unit


def _ceil(value: dt.datetime, unit: dt.timedelta) -> dt.datetime:
    floored = _floor(value, unit)
    return floored if floored == value else floored + unit


def _rows(spec: QuerySpec, keys: list[str], records: list[tuple[Any, ...]]) -> list[Row]:
    rows: list[Row] = []
    for value, window_start, window_end, subject, customer_id, *group_values in records:
        if value is None:
            continue
        if not spec.window_size:
            window_start = spec.start or _floor_minute(window_start)
            window_end = spec.end or _floor_minute(window_end) + MINUTE
        rows.append(
            Row(
                value=_normalize(value),
                window_start=window_start,
                window_end=window_end,
                subject=subject,
                customer_id=customer_id,
                group_by=dict(zip(keys, group_values, strict=True)),
            )
        )
    return rows


def _normalize(value: Decimal) -> Decimal:
    """`12.5000000000000000000` → `12.5`, `1E+2` → `100` (values are computed at scale 19); never rounds."""
    value = Decimal(value).normalize(EXACT)
    return value.quantize(Decimal(1), context=EXACT) if value == value.to_integral_value(context=EXACT) else value


def _floor_minute(value: dt.datetime) -> dt.datetime:
    return value.replace(second=0, microsecond=0)


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
    )
    return {r.customer_id: r.value for r in run_query(spec) if r.customer_id is not None}
