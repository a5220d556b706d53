"""Meter queries and usage ranges in ClickHouse (HOT PATH): one aggregation per call.

A meter whose aggregates are ready (`metering.clickhouse.views`) is read from its buckets over the whole minutes
of the range, at the coarsest resolution that nests in the requested windows (`metering.buckets`: whole UTC days,
hours at their edges, minutes at theirs), from the buckets of all subjects when the query neither filters nor
groups by subject or customer; and from its events over the sub-minute edges of the range. A meter whose
aggregates are being built is read from its events alone. Both give rows of one shape
(`metering.clickhouse.sql.row_columns`), combined by the same aggregates, the same arithmetic as PostgreSQL's
store: MIN, MAX over Decimal(38, 19), SUM in Decimal256 (scale 19: a Decimal(38, 19) sum wraps around silently
past about 1.7E+19), AVG = sum / count, LATEST = the value at the greatest (time, ingestion time, source, id),
UNIQUE_COUNT = the number of distinct values.

Windows are computed in the requested time zone by ClickHouse's calendar functions over each row's time (an
event's, or the start of a bucket, which lies inside one window); times come back as microseconds and become UTC
datetimes here.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from metering.buckets import MINUTE, ceil_to, decompose, floor_to, max_resolution
from metering.clickhouse import sql as ch
from metering.clickhouse import views
from metering.clickhouse.connection import client
from metering.event_store import RESERVED_GROUP_BY, UTC, QuerySpec, Ranges, Row, UsageRequest
from metering.filters import compile_filter_string
from metering.models import Meter, MeterAggregation

EXACT = Context(prec=200)
SCALE = Decimal(1).scaleb(-19)
# (start, end) of a row's window, as DateTime expressions in the zone `{tz}`
_WINDOWS = {
    "MINUTE": ("toStartOfMinute(t, {tz})", "toStartOfMinute(t, {tz}) + 60"),
    "HOUR": ("toStartOfHour(t, {tz})", "toStartOfHour(t, {tz}) + 3600"),
    "DAY": ("toDateTime(toDate(t, {tz}), {tz})", "toDateTime(toDate(t, {tz}) + 1, {tz})"),
    "MONTH": ("toDateTime(toStartOfMonth(t, {tz}), {tz})", "toDateTime(addMonths(toStartOfMonth(t, {tz}), 1), {tz})"),
}
Buckets = list[tuple[int, dt.datetime, dt.datetime]]  # (resolution, lo, hi): bucket starts in [lo, hi)
Edges = list[tuple[dt.datetime | None, dt.datetime | None]]  # event times in [lo, hi), None an open bound


def _aggregate(meter: Meter, condition: str = "") -> list[str]:
    """The meter's aggregate over rows as text columns (the value; for AVG sum and count), over rows matching
    `condition` when given (`-If` combinators: one column per range)."""
    agg = meter.aggregation
    suffix, cond = ("If", f", {condition}") if condition else ("", "")
    if agg == MeterAggregation.COUNT:
        return [f"toString(sum{suffix}(n{cond}))"]
    if agg == MeterAggregation.UNIQUE_COUNT:
        return [f"toString(uniqExact{suffix}(uvalue{cond}))"]
    if agg == MeterAggregation.AVG:
        return [f"toString(sum{suffix}(total{cond}))", f"toString(sum{suffix}(n{cond}))"]
    if agg == MeterAggregation.LATEST:
        return [f"toString(tupleElement(max{suffix}(latest{cond}), 5))"]
    function, column = {"SUM": ("sum", "total"), "MIN": ("min", "low"), "MAX": ("max", "high")}[str(agg)]
    return [f"toString({function}{suffix}({column}{cond}))"]


def _value(meter: Meter, texts: Sequence[str]) -> Decimal | None:
    """The aggregate's text columns as an exact, normalised Decimal (`12.5000000000000000000` → `12.5`)."""
    if meter.aggregation == MeterAggregation.AVG:
        total, count = Decimal(texts[0]), int(texts[1])
        if count == 0:
            return None
        value = EXACT.divide(total, Decimal(count)).quantize(SCALE, rounding=ROUND_HALF_UP, context=EXACT)
    else:
        value = Decimal(texts[0])
    value = value.normalize(EXACT)
    return value.quantize(Decimal(1), context=EXACT) if value == value.to_integral_value(context=EXACT) else value


def _between(column: str, lo: dt.datetime | None, hi: dt.datetime | None) -> str:
    parts = [f"{column} >= {ch.literal(lo)}" if lo is not None else "",
             f"{column} < {ch.literal(hi)}" if hi is not None else ""]
    return "(" + " AND ".join(p for p in parts if p) + ")" if any(parts) else "1"


def _any(conditions: Sequence[str]) -> str:
    return "(" + " OR ".join(conditions) + ")"


def _plan(table: str | None, start: dt.datetime | None, end: dt.datetime | None, window_size: str | None = None,
          time_zone: ZoneInfo = UTC) -> tuple[Buckets, Edges]:
    """What the range [start, end) reads: buckets over its whole minutes, events over the rest (all of it when
    the meter has no ready table, the range holds no whole minute, or the zone's offsets are not whole minutes)."""
    everything: Edges = [(start, end)]
    if table is None:
        return [], everything
    a = ceil_to(start, MINUTE) if start is not None else None
    b = floor_to(end, MINUTE) if end is not None else None
    if a is not None and b is not None and a >= b:
        return [], everything
    extent: tuple[dt.datetime, dt.datetime] | None = (a, b) if a is not None and b is not None else None
    if extent is None:  # an open bound: closed by the first and last day of the meter's buckets
        days = views.bucket_extent(table)
        if days is not None:
            lo, hi = a if a is not None else days[0], b if b is not None else days[1] + dt.timedelta(days=1)
            extent = (lo, hi) if lo < hi else None
    buckets: Buckets = []
    if extent is not None:
        resolution = max_resolution(window_size, time_zone, *extent)
        if resolution is None:
            return [], everything
        buckets = decompose(*extent, resolution)
    edges: Edges = [(lo, hi) for lo, hi in ((start, a), (b, end)) if lo is not None and hi is not None and lo < hi]
    return buckets, edges


def _rows(meter: Meter, table: str | None, buckets: Buckets, edges: Edges, where: Sequence[str],
          all_subjects: bool, exact: bool = True) -> str:
    """The rows of the buckets (of all subjects together, or per subject) and of the events in the edges (one or
    both), restricted by `where` (conditions over `subject`). `exact=False` reads the buckets of the resolutions
    used between the first and the last bucket (for callers whose aggregates pick their own rows: one condition
    instead of one per piece, which ClickHouse analyses faster)."""
    sources = []
    if buckets and table is not None:
        if exact:
            span = _any([f"(resolution = {r} AND {_between('bucket', lo, hi)})" for r, lo, hi in buckets])
        else:
            resolutions = ", ".join(str(r) for r in sorted({r for r, _, _ in buckets}))
            span = (f"resolution IN ({resolutions}) AND "
                    f"{_between('bucket', min(lo for _, lo, _ in buckets), max(hi for _, _, hi in buckets))}")
        conditions = ["subject = ''" if all_subjects else "subject != ''", *where, span]
        columns = ", ".join("bucket AS t" if c == "t" else c for c in ch.row_columns(meter))
        sources.append(f"SELECT {columns} FROM `{table}` WHERE {' AND '.join(conditions)}")
    if edges:
        sources.append(ch.event_rows(meter, [*where, _any([_between("time", lo, hi) for lo, hi in edges])]))
    return "(" + " UNION ALL ".join(sources) + ")"


def _filters(meter: Meter, group_filters: Mapping[str, Sequence[str]], advanced: Mapping[str, Any]) -> list[str]:
    where = [f"has({ch.literal(list(values))}, {ch.group_column(meter, key)})"
             for key, values in sorted(group_filters.items())]
    where += [compile_filter_string(ch.group_column(meter, key), spec, f"advancedMeterGroupByFilters.{key}", ch.CLICKHOUSE)
              for key, spec in sorted(advanced.items())]
    return where


def _start(spec: QuerySpec) -> dt.datetime | None:
    """The query's start, not before the meter's `eventFrom`."""
    if spec.meter.event_from is not None and (spec.start is None or spec.start < spec.meter.event_from):
        return spec.meter.event_from
    return spec.start


def query_sql(spec: QuerySpec, table: str | None) -> str | None:
    """The meter query over the meter's ready `table` (None: over its events alone); None when nothing can count."""
    meter, start = spec.meter, _start(spec)
    if start is not None and spec.end is not None and start >= spec.end:
        return None
    if spec.subjects is not None and not spec.subjects:
        return None
    where = []
    if spec.subjects is not None:
        where.append(f"subject IN {_tuple(spec.subjects)}")
    customers = spec.subject_customers or {}
    if "customer_id" in spec.group_by:
        where.append(f"subject IN {_tuple(list(customers))}")
    all_subjects = spec.subjects is None and not set(spec.group_by) & set(RESERVED_GROUP_BY)
    buckets, edges = _plan(table, start, spec.end, spec.window_size, spec.time_zone)
    if not buckets and not edges:  # open bounds and no buckets yet: nothing was counted
        return None
    rows = _rows(meter, table, buckets, edges, where, all_subjects)
    keys = [k for k in spec.group_by if k not in RESERVED_GROUP_BY]
    select = _aggregate(meter)
    group: list[str] = []
    if spec.window_size:
        tz = ch.literal(spec.time_zone.key)
        window_start, window_end = (part.format(tz=tz) for part in _WINDOWS[spec.window_size])
        select += [f"toInt64(toUnixTimestamp({window_start})) * 1000000",
                   f"toInt64(toUnixTimestamp({window_end})) * 1000000"]
        group += [window_start, window_end]
    else:
        select += ["toUnixTimestamp64Micro(min(first_time))", "toUnixTimestamp64Micro(max(last_time))"]
    if "subject" in spec.group_by:
        select.append("subject")
        group.append("subject")
    else:
        select.append("NULL")
    if "customer_id" in spec.group_by:
        customer = f"transform(subject, {_array(list(customers))}, {_array(list(customers.values()))}, '')"
        select.append(customer)
        group.append(customer)
    else:
        select.append("NULL")
    for key in keys:
        select.append(ch.group_column(meter, key))
        group.append(ch.group_column(meter, key))
    filters = _filters(meter, spec.group_filters, spec.advanced_filters)
    order = ", ".join(str(i) for i in range(len(_aggregate(meter)) + 1, len(select) + 1))
    return (
        f"SELECT {', '.join(select)} FROM {rows} AS r"
        f"{' WHERE ' + ' AND '.join(filters) if filters else ''}"
        f"{' GROUP BY ' + ', '.join(group) if group else ''} HAVING sum(n) > 0 ORDER BY {order}"
    )


def _array(values: Sequence[str]) -> str:
    return ch.literal(list(values))


def _tuple(values: Sequence[str]) -> str:
    """`IN` over a set of strings: `('a', 'b')`; an empty set matches nothing."""
    return "(" + ", ".join(ch.literal(v) for v in values) + ")" if values else "(NULL)"


def run_query(spec: QuerySpec) -> list[Row]:
    query = query_sql(spec, views.ready_tables([spec.meter]).get(spec.meter.pk))
    if query is None:
        return []
    records = client().query(query).result_rows
    keys = [k for k in spec.group_by if k not in RESERVED_GROUP_BY]
    n = len(_aggregate(spec.meter))
    rows = []
    for record in records:
        value = _value(spec.meter, record[:n])
        if value is None:
            continue
        first, last, subject, customer, *groups = record[n:]
        if spec.window_size:
            window_start, window_end = ch.from_micros(first), ch.from_micros(last)
        else:
            window_start = spec.start or floor_to(ch.from_micros(first), MINUTE)
            window_end = spec.end or floor_to(ch.from_micros(last), MINUTE) + MINUTE
        rows.append(Row(value, window_start, window_end, subject, customer, dict(zip(keys, groups, strict=True))))
    return rows


def usage_ranges(
    *,
    meter: Meter,
    subjects: Sequence[str],
    ranges: Ranges,
    group_filters: Mapping[str, Sequence[str]] | None = None,
    advanced_filters: Mapping[str, Any] | None = None,
) -> list[Decimal]:
    """The meter's total for `subjects` over each range, in one query: one `-If` aggregate per range."""
    return usage_ranges_many([UsageRequest(meter, subjects, ranges, group_filters or {}, advanced_filters or {})])[0]


def usage_ranges_many(requests: Sequence[UsageRequest]) -> list[list[Decimal]]:
    """`usage_ranges` of each request, in one query (the requests' selects, each tagged with its index)."""
    tables = views.ready_tables(list({r.meter.pk: r.meter for r in requests}.values()))
    selects = [(k, _usage_select(r, tables.get(r.meter.pk))) for k, r in enumerate(requests)]
    parts = [f"SELECT {k} AS k, texts FROM ({select})" for k, select in selects if select is not None]
    rows = client().query(" UNION ALL ".join(parts)).result_rows if parts else []
    found: dict[int, Sequence[str]] = {int(k): texts for k, texts in rows}
    return [_usage_totals(r, found[k]) if k in found else [Decimal(0)] * len(r.ranges) for k, r in enumerate(requests)]


def _wanted(request: UsageRequest) -> list[tuple[int, dt.datetime, dt.datetime]]:
    return [(i, start, end) for i, (start, end) in enumerate(request.ranges) if start < end]


def _usage_select(request: UsageRequest, table: str | None) -> str | None:
    """One row: the texts of a count and the meter's aggregate per range (None: nothing to read). Each range
    reads its own buckets and edges (by the rows' resolution and time); the rows are read once for all ranges."""
    meter, subjects, wanted = request.meter, request.subjects, _wanted(request)
    if not subjects or not wanted:
        return None
    all_buckets: Buckets = []
    all_edges: Edges = []
    columns: list[str] = []
    for _, start, end in wanted:
        buckets, edges = _plan(table, start, end)
        all_buckets += buckets
        all_edges += edges
        condition = _any([*(f"(resolution = {r} AND {_between('t', lo, hi)})" for r, lo, hi in buckets),
                          *(f"(resolution = 0 AND {_between('t', lo, hi)})" for lo, hi in edges)])
        columns += [f"toString(sumIf(n, {condition}))", *_aggregate(meter, condition)]
    rows = _rows(meter, table, all_buckets, all_edges, [f"subject IN {_tuple(subjects)}"], all_subjects=False,
                 exact=False)
    filters = _filters(meter, request.group_filters, request.advanced_filters)
    query = f"SELECT [{', '.join(columns)}] AS texts FROM {rows} AS r"
    if filters:
        query += " WHERE " + " AND ".join(filters)
    return query


def _usage_totals(request: UsageRequest, texts: Sequence[str]) -> list[Decimal]:
    totals = [Decimal(0)] * len(request.ranges)
    width = 1 + len(_aggregate(request.meter))
    for position, (i, _, _) in enumerate(_wanted(request)):
        count, *values = texts[position * width:(position + 1) * width]
        if int(count):
            totals[i] = _value(request.meter, values) or Decimal(0)
    return totals
