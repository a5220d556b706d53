"""A meter's total for some subjects over several time ranges (HOT PATH: every entitlement value read).

`meter_usage_ranges` answers what `metering.postgres.query.meter_usage` answers, for many ranges at once (an
entitlement's burn-down phases) in one statement, and cheaply: the statement text depends only on the meter,
the filters and which sources are read, so it is composed once per process and prepared once per database
connection (`openmeter_site.core.sql`), and the ranges go in as one JSON parameter of pieces. It reads the
sources the meter query reads (`metering.postgres.query`), in one snapshot:
  - rollup buckets for the minute-aligned middle [A, B) of each range, split into minutes, hours and UTC days
    (`decompose`), per subject;
  - the pending events (stored, not folded yet) in [A, B);
  - the sub-minute edges [from, A) and [B, to) from the event table;
or, while the meter's rollups are being (re)built, the whole range from the event table.
The event branches are left out of the text when they have no pieces: PostgreSQL inlines the value
extraction functions into every branch that reads events, which makes planning slow (when preparing is off).
"""

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import connection
from psycopg import sql

from metering.buckets import MINUTE, ceil_to, decompose, floor_to
from metering.event_store import UsageRequest
from metering.filters import compile_filter_string
from metering.models import Meter, Rollup
from metering.postgres.query import EXACT, PENDING_JOIN, events_as_rollups_sql, rollup_aggregate_sql
from openmeter_site.core.sql import cached_statement, fetch_prepared

Ranges = Sequence[tuple[dt.datetime, dt.datetime]]
SOURCES = ("rollup", "pending", "raw")

# The statement's only placeholders, in a hand-written prefix (so no literal of the body holds a `%`): the
# subjects, and the pieces as one JSON array of {source, i (the range), res (rollups), lo, hi}.
_PREFIX = """WITH params AS (SELECT %(subjects)s::text[] AS subjects, %(pieces)s::jsonb AS pieces),
pieces AS (SELECT t.*, params.subjects FROM params CROSS JOIN
           jsonb_to_recordset(params.pieces) AS t(source text, i int, res int, lo timestamptz, hi timestamptz))
"""

_ROLLUPS = (
    "SELECT piece.i, r.* FROM pieces AS piece CROSS JOIN LATERAL ("
    "SELECT bucket AS t, subject, groups, uvalue, sum, count, min, max, first_time, latest_time, latest_seq, "
    "latest_value FROM metering_rollup WHERE meter_id = {meter} AND resolution = piece.res AND bucket >= piece.lo "
    "AND bucket < piece.hi AND subject <> '' AND subject = ANY(piece.subjects) OFFSET 0) AS r "
    "WHERE piece.source = 'rollup'{request}"
)
_EVENT_SOURCES = {
    "pending": PENDING_JOIN,
    "raw": "metering_event e",
}


def _events(meter: Meter, source: str, request: sql.Composable) -> sql.Composable:
    """The meter's events inside each piece of `source`, rollup-shaped, tagged with the piece's range."""
    where = [sql.SQL("e.time >= piece.lo AND e.time < piece.hi AND e.subject = ANY(piece.subjects)")]
    return sql.SQL(
        "SELECT piece.i, r.* FROM pieces AS piece CROSS JOIN LATERAL ({events} OFFSET 0) AS r "
        "WHERE piece.source = {source}{request}"
    ).format(events=events_as_rollups_sql(meter, sql.SQL(_EVENT_SOURCES[source]), where), source=sql.Literal(source),
             request=request)


def _body(
    meter: Meter, group_filters: Mapping[str, Sequence[str]], advanced_filters: Mapping[str, Any], sources: Sequence[str],
    request: int | None = None,
) -> sql.Composable:
    """The totals per range `i`; `request`: only the pieces of that request (`meter_usage_ranges_many`)."""
    only = sql.SQL("") if request is None else sql.SQL(" AND piece.k = {}").format(sql.Literal(request))
    parts = [sql.SQL(_ROLLUPS).format(meter=sql.Literal(meter.pk), request=only) if s == "rollup"
             else _events(meter, s, only) for s in sources]
    where: list[sql.Composable]  # the advanced filters below add other Composables
    where = [sql.SQL("(src.groups->>{}) = ANY({}::text[])").format(sql.Literal(key), sql.Literal(list(values)))
             for key, values in sorted(group_filters.items())]
    where += [compile_filter_string(sql.SQL("(src.groups->>{})").format(sql.Literal(key)), spec,
                                    f"advancedMeterGroupByFilters.{key}")
              for key, spec in sorted(advanced_filters.items())]
    return sql.SQL("SELECT src.i, {value} FROM ({parts}) AS src{where} GROUP BY src.i").format(
        value=rollup_aggregate_sql(meter),
        parts=sql.SQL(" UNION ALL ").join(parts),
        where=sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
    )


def _statement(
    meter: Meter, group_filters: Mapping[str, Sequence[str]], advanced_filters: Mapping[str, Any], sources: Sequence[str]
) -> str:
    key = [meter.pk, meter.aggregation, meter.event_type, meter.event_from, meter.value_property, meter.group_by,
           group_filters, advanced_filters, list(sources)]
    return cached_statement(key, _PREFIX, lambda: _body(meter, group_filters, advanced_filters, sources))


def rollups_complete(meter: Meter) -> bool:
    """Read fresh: a caller may hold the meter from before a rebuild started (its rollups are gone meanwhile)."""
    with connection.cursor() as cur:
        cur.execute("SELECT backfill_cursor IS NULL FROM metering_meter WHERE id = %s", [meter.pk])
        row = cur.fetchone()
    return row is not None and row[0]


def _pieces(meter: Meter, ranges: Ranges, complete: bool) -> list[dict[str, Any]]:
    """Each range split into the pieces every source reads (the meter query's split, see `metering.postgres.query`)."""
    pieces: list[dict[str, Any]] = []

    def add(source: str, i: int, lo: dt.datetime, hi: dt.datetime, res: int | None = None) -> None:
        pieces.append({"source": source, "i": i, "res": res, "lo": lo.isoformat(), "hi": hi.isoformat()})

    for i, (start, end) in enumerate(ranges):
        if meter.event_from is not None and start < meter.event_from:
            start = meter.event_from
        if start >= end:
            continue
        a, b = ceil_to(start, MINUTE), floor_to(end, MINUTE)
        if not complete or a >= b:  # rebuilding, or less than a whole minute: events only
            add("raw", i, start, end)
            continue
        for resolution, lo, hi in decompose(a, b, Rollup.Resolution.DAY):
            add("rollup", i, lo, hi, resolution)
        add("pending", i, a, b)
        for lo, hi in ((start, a), (b, end)):
            if lo < hi:
                add("raw", i, lo, hi)
    return pieces


def meter_usage_ranges(
    *,
    meter: Meter,
    subjects: Sequence[str],
    ranges: Ranges,
    group_filters: Mapping[str, Sequence[str]] | None = None,
    advanced_filters: Mapping[str, Any] | None = None,
    fresh_meter: bool = False,
) -> list[Decimal]:
    """The meter's total for `subjects` over each [start, end) of `ranges`, in order (0 where nothing counts).
    `group_filters`: groupBy key → allowed values; `advanced_filters`: groupBy key → FilterString.
    `fresh_meter`: the caller read `meter` in this request, so its `backfill_cursor` need not be read again."""
    totals = [Decimal(0)] * len(ranges)
    if not subjects or not ranges:
        return totals
    connection.ensure_connection()
    complete = meter.backfill_cursor is None if fresh_meter else rollups_complete(meter)
    pieces = _pieces(meter, ranges, complete)
    sources = [s for s in SOURCES if any(p["source"] == s for p in pieces)]
    if not sources:
        return totals
    statement = _statement(meter, group_filters or {}, advanced_filters or {}, sources)
    # prepared: its text depends only on the meter, the filters and the sources, and every variable input arrives
    # through the CTEs, so the generic plan is the plan of every call
    for i, value in fetch_prepared(statement, {"subjects": list(subjects), "pieces": json.dumps(pieces)}):
        if value is not None:
            totals[i] = EXACT.add(totals[i], _normalize(value))  # the default context rounds to 28 digits
    return totals


def _normalize(value: Decimal) -> Decimal:
    """`12.5000000000000000000` → `12.5`, `1E+2` → `100` (values are computed at scale 19); never rounds."""
    value = Decimal(value).normalize(EXACT)
    return value.quantize(Decimal(1), context=EXACT) if value == value.to_integral_value(context=EXACT) else value


# `meter_usage_ranges_many`: the pieces of every request (`k`) in one JSON parameter, each request's subjects in another.
_MANY_PREFIX = """WITH pieces AS (
  SELECT t.*, ARRAY(SELECT jsonb_array_elements_text(%(subjects)s::jsonb -> t.k)) AS subjects
  FROM jsonb_to_recordset(%(pieces)s::jsonb) AS t(k int, source text, i int, res int, lo timestamptz, hi timestamptz))
"""


def meter_usage_ranges_many(requests: Sequence[UsageRequest]) -> list[list[Decimal]]:
    """`meter_usage_ranges` of each request in two statements however many requests there are: which meters have
    complete rollups, then every request's totals (one body per request, as `meter_usage_ranges` composes it)."""
    totals = [[Decimal(0)] * len(r.ranges) for r in requests]
    asked = [(k, r) for k, r in enumerate(requests) if r.subjects and r.ranges]
    if not asked:
        return totals
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM metering_meter WHERE id = ANY(%s) AND backfill_cursor IS NULL",
                    [list({r.meter.pk for _, r in asked})])
        complete = {row[0] for row in cur.fetchall()}
    pieces, bodies = [], []
    for k, r in asked:
        mine = [{**p, "k": k} for p in _pieces(r.meter, r.ranges, r.meter.pk in complete)]
        sources = [s for s in SOURCES if any(p["source"] == s for p in mine)]
        if sources:
            pieces += mine
            body = _body(r.meter, r.group_filters, r.advanced_filters, sources, request=k)
            bodies.append(sql.SQL("SELECT {} AS k, b.* FROM ({}) AS b").format(sql.Literal(k), body))
    if not bodies:
        return totals
    statement = _MANY_PREFIX + sql.SQL(" UNION ALL ").join(bodies).as_string(connection.connection).replace("%", "%%")
    subjects = [list(r.subjects) for r in requests]
    with connection.cursor() as cur:
        cur.execute(statement, {"subjects": json.dumps(subjects), "pieces": json.dumps(pieces)})
        for k, i, value in cur.fetchall():
            if value is not None:
                totals[k][i] = EXACT.add(totals[k][i], _normalize(value))
    return totals
