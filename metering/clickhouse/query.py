"""Meter queries and usage ranges in ClickHouse (HOT PATH): one aggregation over the meter's events.

The events table is ordered by (type, subject, time), so a query reads only its meter's type, its subjects'
ranges when it names subjects, and its months. Each event's values are read from its JSON once per query
(`metering.clickhouse.sql`); the same arithmetic as PostgreSQL's store: MIN, MAX over Decimal(38, 19), SUM in Decimal256,
AVG = sum / count, LATEST = the value at the greatest (time, ingestion time, source, id), UNIQUE_COUNT = the
number of distinct values.

Windows are computed in the requested time zone by ClickHouse's calendar functions (a DST day is 23 or 25 hours
long); times come back as microseconds and become UTC datetimes here.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from metering.clickhouse import sql as ch
from metering.clickhouse.connection import EVENTS_TABLE, client
from metering.event_store import RESERVED_GROUP_BY, QuerySpec, Ranges, Row, UsageRequest
from metering.filters import compile_filter_string
from metering.models import Meter, MeterAggregation

EXACT = Context(prec=200)
SCALE = Decimal(1).scaleb(-19)
MINUTE = dt.timedelta(minutes=1)
# (start, end) of an event's window, as DateTime expressions in the zone `{tz}`
_WINDOWS = {
    "MINUTE": ("toStartOfMinute(time, {tz})", "toStartOfMinute(time, {tz}) + 60"),
    "HOUR": ("toStartOfHour(time, {tz})", "toStartOfHour(time, {tz}) + 3600"),
    "DAY": ("toDateTime(toDate(time, {tz}), {tz})", "toDateTime(toDate(time, {tz}) + 1, {tz})"),
    "MONTH": ("toDateTime(toStartOfMonth(time, {tz}), {tz})",
              "toDateTime(addMonths(toStartOfMonth(time, {tz}), 1), {tz})"),
}


def _aggregate(meter: Meter, condition: str = "") -> list[str]:
    """The meter's aggregate as text columns (the value; for AVG sum and count), over events matching `condition`
    when given (`-If` combinators: one column per range)."""
    agg = meter.aggregation
    suffix, cond = ("If", f", {condition}") if condition else ("", "")
    if agg == MeterAggregation.COUNT:
        return [f"toString(count{suffix}({condition}))"]
    if agg == MeterAggregation.UNIQUE_COUNT:
        return [f"toString(uniqExact{suffix}(u{cond}))"]
    # sums in Decimal256: a Decimal(38, 19) sum wraps around silently past about 1.7E+19
    total = f"toString(sum{suffix}(toDecimal256(v, 19){cond}))"
    if agg == MeterAggregation.AVG:
        return [total, f"toString(count{suffix}({condition}))"]
    if agg == MeterAggregation.SUM:
        return [total]
    if agg == MeterAggregation.LATEST:
        return [f"toString(argMax{suffix}(v, (time, ingested_at, source, id){cond}))"]
    function = {"MIN": "min", "MAX": "max"}[str(agg)]
    return [f"toString({function}{suffix}(v{cond}))"]


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


def _events(meter: Meter, where: Sequence[str]) -> str:
    """The meter's events with their readings (`v`, `u`, `g0`…) as a subquery, restricted by `where` (over the
    table's columns) and by what counts for the meter."""
    columns = ", ".join(f"{expr} AS {name}" for name, expr in ch.readings_columns(meter).items())
    conditions = [f"type = {ch.literal(meter.event_type)}", *where]
    if meter.event_from is not None:
        conditions.append(f"time >= {ch.literal(meter.event_from)}")
    inner = (f"SELECT time, subject, ingested_at, source, id, {columns} FROM {EVENTS_TABLE} "
             f"WHERE {' AND '.join(conditions)}")
    outer = ch.eligible(meter)
    return f"(SELECT * FROM ({inner}){' WHERE ' + ' AND '.join(outer) if outer else ''})"


def _filters(meter: Meter, group_filters: Mapping[str, Sequence[str]], advanced: Mapping[str, Any]) -> list[str]:
    where = [f"has({ch.literal(list(values))}, {ch.group_column(meter, key)})"
             for key, values in sorted(group_filters.items())]
    where += [compile_filter_string(ch.group_column(meter, key), spec, f"advancedMeterGroupByFilters.{key}", ch.CLICKHOUSE)
              for key, spec in sorted(advanced.items())]
    return where


def query_sql(spec: QuerySpec) -> str:
    meter = spec.meter
    where = []
    if spec.start is not None:
        where.append(f"time >= {ch.literal(spec.start)}")
    if spec.end is not None:
        where.append(f"time < {ch.literal(spec.end)}")
    if spec.subjects is not None:
        where.append(f"subject IN {_tuple(spec.subjects)}")
    keys = [k for k in spec.group_by if k not in RESERVED_GROUP_BY]
    select = _aggregate(meter)
    group: list[str] = []
    if spec.window_size:
        tz = ch.literal(spec.time_zone.key)
        start, end = (part.format(tz=tz) for part in _WINDOWS[spec.window_size])
        select += [f"toInt64(toUnixTimestamp({start})) * 1000000", f"toInt64(toUnixTimestamp({end})) * 1000000"]
        group += [start, end]
    else:
        select += ["toUnixTimestamp64Micro(min(time))", "toUnixTimestamp64Micro(max(time))"]
    if "subject" in spec.group_by:
        select.append("subject")
        group.append("subject")
    else:
        select.append("NULL")
    customers = spec.subject_customers or {}
    if "customer_id" in spec.group_by:
        customer = f"transform(subject, {_array(list(customers))}, {_array(list(customers.values()))}, '')"
        where.append(f"subject IN {_tuple(list(customers))}")
        select.append(customer)
        group.append(customer)
    else:
        select.append("NULL")
    for key in keys:
        select.append(ch.group_column(meter, key))
        group.append(ch.group_column(meter, key))
    having = _filters(meter, spec.group_filters, spec.advanced_filters)
    value_columns = len(_aggregate(meter))
    order = ", ".join(str(i) for i in range(value_columns + 1, len(select) + 1))
    return (
        f"SELECT {', '.join(select)} FROM {_events(meter, where)} AS e"
        f"{' WHERE ' + ' AND '.join(having) if having else ''}"
        f"{' GROUP BY ' + ', '.join(group) if group else ''} HAVING count() > 0 ORDER BY {order}"
    )


def _array(values: Sequence[str]) -> str:
    return ch.literal(list(values))


def _tuple(values: Sequence[str]) -> str:
    """`IN` over a set of strings: `('a', 'b')`; an empty set matches nothing."""
    return "(" + ", ".join(ch.literal(v) for v in values) + ")" if values else "(NULL)"


def run_query(spec: QuerySpec) -> list[Row]:
    start, end = spec.start, spec.end
    if spec.meter.event_from is not None and (start is None or start < spec.meter.event_from):
        start = spec.meter.event_from
    if start is not None and end is not None and start >= end:
        return []
    if spec.subjects is not None and not spec.subjects:
        return []
    records = client().query(query_sql(spec)).result_rows
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
            window_start = spec.start or _floor_minute(ch.from_micros(first))
            window_end = spec.end or _floor_minute(ch.from_micros(last)) + MINUTE
        rows.append(Row(value, window_start, window_end, subject, customer, dict(zip(keys, groups, strict=True))))
    return rows


def _floor_minute(value: dt.datetime) -> dt.datetime:
    return value.replace(second=0, microsecond=0)


def usage_ranges(
    *,
    meter: Meter,
    subjects: Sequence[str],
    ranges: Ranges,
    group_filters: Mapping[str, Sequence[str]] | None = None,
    advanced_filters: Mapping[str, Any] | None = None,
) -> list[Decimal]:
    """The meter's total for `subjects` over each range, in one query: one `-If` aggregate per range."""
    request = UsageRequest(meter, subjects, ranges, group_filters or {}, advanced_filters or {})
    select = _usage_select(request)
    if select is None:
        return [Decimal(0)] * len(ranges)
    [(texts,)] = client().query(select).result_rows
    return _usage_totals(request, texts)


def usage_ranges_many(requests: Sequence[UsageRequest]) -> list[list[Decimal]]:
    """`usage_ranges` of each request, in one query (the requests' selects, each tagged with its index)."""
    selects = [(k, _usage_select(r)) for k, r in enumerate(requests)]
    parts = [f"SELECT {k} AS k, texts FROM ({select})" for k, select in selects if select is not None]
    rows = client().query(" UNION ALL ".join(parts)).result_rows if parts else []
    found: dict[int, Sequence[str]] = {int(k): texts for k, texts in rows}
    return [_usage_totals(r, found[k]) if k in found else [Decimal(0)] * len(r.ranges) for k, r in enumerate(requests)]


def _wanted(request: UsageRequest) -> list[tuple[int, dt.datetime, dt.datetime]]:
    return [(i, start, end) for i, (start, end) in enumerate(request.ranges) if start < end]


def _usage_select(request: UsageRequest) -> str | None:
    """One row: the texts of a count and the meter's aggregate per range (None: nothing to read)."""
    meter, subjects, wanted = request.meter, request.subjects, _wanted(request)
    if not subjects or not wanted:
        return None
    where = [
        f"subject IN {_tuple(subjects)}",
        f"time >= {ch.literal(min(start for _, start, _ in wanted))}",
        f"time < {ch.literal(max(end for _, _, end in wanted))}",
    ]
    columns: list[str] = []
    for _, start, end in wanted:
        condition = f"time >= {ch.literal(start)} AND time < {ch.literal(end)}"
        columns += [f"toString(countIf({condition}))", *_aggregate(meter, condition)]
    having = _filters(meter, request.group_filters, request.advanced_filters)
    query = f"SELECT [{', '.join(columns)}] AS texts FROM {_events(meter, where)} AS e"
    if having:
        query += " WHERE " + " AND ".join(having)
    return query


def _usage_totals(request: UsageRequest, texts: Sequence[str]) -> list[Decimal]:
    totals = [Decimal(0)] * len(request.ranges)
    width = 1 + len(_aggregate(request.meter))
    for position, (i, _, _) in enumerate(_wanted(request)):
        count, *values = texts[position * width:(position + 1) * width]
        if int(count):
            totals[i] = _value(request.meter, values) or Decimal(0)
    return totals
