"""Meter queries (HOT PATH): one SQL aggregation, never a Python loop over events.

`run_query(spec)` is the one entry point for the API's meter query, entitlement balances and invoice usage.
This module holds the raw-event implementation (JSON extracted per query), used for meters whose rollups are
still being built and as the benchmark baseline.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from psycopg import sql

from metering.models import Meter, MeterAggregation

UTC = ZoneInfo("UTC")
RESERVED_GROUP_BY = ("subject", "customer_id")


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


@dataclass(frozen=True)
class Row:
    value: Decimal
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    subject: str | None
    customer_id: str | None
    group_by: dict[str, str | None]


def _value_expr(meter: Meter) -> sql.Composable:
    return sql.SQL("om_to_numeric(jsonb_path_query_first(e.data, {}::jsonpath))").format(
        sql.Literal(meter.value_property or "$")
    )


def _aggregate_expr(meter: Meter) -> sql.Composable:
    agg = meter.aggregation
    if agg == MeterAggregation.COUNT:
        return sql.SQL("count(*)::numeric")
    if agg == MeterAggregation.UNIQUE_COUNT:
        return sql.SQL("count(DISTINCT om_to_text(jsonb_path_query_first(e.data, {}::jsonpath)))::numeric").format(
            sql.Literal(meter.value_property or "$")
        )
    v = _value_expr(meter)
    if agg == MeterAggregation.LATEST:
        return sql.SQL("(array_agg({v} ORDER BY e.time DESC) FILTER (WHERE {v} IS NOT NULL))[1]").format(v=v)
    func = {"SUM": "sum", "AVG": "avg", "MIN": "min", "MAX": "max"}[agg]
    return sql.SQL("{}({})").format(sql.SQL(func), v)


def _group_value_expr(meter: Meter, key: str) -> sql.Composable:
    return sql.SQL("om_to_text(jsonb_path_query_first(e.data, {}::jsonpath))").format(sql.Literal(meter.group_by[key]))


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


def run_raw_query(spec: QuerySpec) -> list[Row]:
    """The query straight over the event table, extracting JSON per event."""
    meter = spec.meter
    where = [sql.SQL("e.type = %(type)s")]
    params: dict[str, Any] = {"type": meter.event_type}
    start = spec.start
    if meter.event_from and (start is None or start < meter.event_from):
        start = meter.event_from
    if start is not None:
        where.append(sql.SQL("e.time >= %(start)s"))
        params["start"] = start
    if spec.end is not None:
        where.append(sql.SQL("e.time < %(end)s"))
        params["end"] = spec.end
    if spec.subjects is not None:
        where.append(sql.SQL("e.subject = ANY(%(subjects)s)"))
        params["subjects"] = list(spec.subjects)
    for i, (key, values) in enumerate(sorted(spec.group_filters.items())):
        where.append(sql.SQL("{} = ANY(%(gf{})s)").format(_group_value_expr(meter, key), sql.SQL(str(i))))
        params[f"gf{i}"] = list(values)
    if meter.aggregation not in (MeterAggregation.COUNT, MeterAggregation.UNIQUE_COUNT):
        where.append(sql.SQL("{} IS NOT NULL").format(_value_expr(meter)))

    select: list[sql.Composable] = [sql.SQL("{} AS value").format(_aggregate_expr(meter))]
    group: list[sql.Composable] = []
    if spec.window_size:
        ws, we = window_bounds_sql(sql.SQL("e.time"), spec.window_size, spec.time_zone)
        select += [sql.SQL("{} AS window_start").format(ws), sql.SQL("{} AS window_end").format(we)]
        group += [sql.SQL("2"), sql.SQL("3")]
    else:
        select += [sql.SQL("min(e.time) AS window_start"), sql.SQL("max(e.time) AS window_end")]
    source = sql.SQL("metering_event e")
    if "subject" in spec.group_by:
        select.append(sql.SQL("e.subject"))
        group.append(sql.SQL("e.subject"))
    else:
        select.append(sql.SQL("NULL::text"))
    if "customer_id" in spec.group_by:
        mapping = spec.subject_customers or {}
        source = sql.SQL("metering_event e JOIN unnest(%(cs)s::text[], %(cc)s::text[]) AS c(subject, customer_id) "
                         "ON c.subject = e.subject")
        params["cs"], params["cc"] = list(mapping.keys()), list(mapping.values())
        select.append(sql.SQL("c.customer_id"))
        group.append(sql.SQL("c.customer_id"))
    else:
        select.append(sql.SQL("NULL::text"))
    keys = [k for k in spec.group_by if k not in RESERVED_GROUP_BY]
    for key in keys:
        select.append(_group_value_expr(meter, key))
        group.append(_group_value_expr(meter, key))

    query = sql.SQL("SELECT {select} FROM {source} WHERE {where}{group} ORDER BY 2").format(
        select=sql.SQL(", ").join(select),
        source=source,
        where=sql.SQL(" AND ").join(where),
        group=sql.SQL(" GROUP BY ") + sql.SQL(", ").join(group) if group else sql.SQL(""),
    )
    with connection.cursor() as cur:
        cur.execute(query, params)
        records = cur.fetchall()
    return _rows(spec, keys, records)


def _rows(spec: QuerySpec, keys: list[str], records: list[tuple[Any, ...]]) -> list[Row]:
    rows: list[Row] = []
    for value, window_start, window_end, subject, customer_id, *group_values in records:
        if value is None:
            continue
        if not spec.window_size:
            window_start = spec.start or _floor_minute(window_start)
            window_end = spec.end or _floor_minute(window_end) + dt.timedelta(minutes=1)
        rows.append(
            Row(
                value=Decimal(value),
                window_start=window_start,
                window_end=window_end,
                subject=subject,
                customer_id=customer_id,
                group_by=dict(zip(keys, group_values, strict=True)),
            )
        )
    return rows


def _floor_minute(value: dt.datetime) -> dt.datetime:
    return value.replace(second=0, microsecond=0)


def run_query(spec: QuerySpec) -> list[Row]:
    return run_raw_query(spec)


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
    return sum((r.value for r in rows), Decimal(0))


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
