"""What a meter reads from an event, in ClickHouse SQL, and ClickHouse literals.

A meter's JSONPaths are read with `JSONExtractRaw(data, key, …)`, so the paths this store evaluates are the
plain ones: `$`, then `.name`, `."name"`, `['name']`, `["name"]` or `[n]` steps. Filters, wildcards and other
SQL/JSON path features are refused when the meter is created (PostgreSQL's store evaluates them).
Numbers are read as ClickHouse's JSON functions read them (as doubles, so at most 15 to 17 significant digits),
then summed exactly at scale 19 (in Decimal256), the same scale as PostgreSQL's store.

`event_rows` is a meter's events as rows of the shape its buckets have (`metering.clickhouse.views`), so that
queries read buckets and events alike.

Values are quoted here (`literal`), never formatted from user input without it.
"""

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from metering.clickhouse.connection import EVENTS_TABLE
from metering.filters import COMPARISONS, Dialect
from metering.models import Meter, MeterAggregation

TIME = "DateTime64(6, 'UTC')"
DECIMAL = "Decimal(38, 19)"

_STEP = re.compile(
    r"""\.([A-Za-z_][A-Za-z0-9_]*)"""  # .name
    r'|\."((?:[^"\\]|\\.)*)"'  # ."name"
    r"""|\[\s*'((?:[^'\\]|\\.)*)'\s*\]"""  # ['name']
    r"""|\[\s*"((?:[^"\\]|\\.)*)"\s*\]"""  # ["name"]
    r"""|\[\s*(\d+)\s*\]"""  # [n]
)


def json_path_keys(path: str) -> list[str | int] | None:
    """`$.a["b"][0]` → ['a', 'b', 0]; None for a path outside the plain subset."""
    text = path.strip()
    if not text.startswith("$"):
        return None
    keys: list[str | int] = []
    position = 1
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            return None
        name, quoted, single, double, index = match.groups()
        if index is not None:
            keys.append(int(index))
        else:
            keys.append(name if name is not None else re.sub(r"\\(.)", r"\1", quoted or single or double or ""))
        position = match.end()
    return keys


def literal(value: Any) -> str:
    """A ClickHouse literal: strings quoted with backslash escapes, lists as arrays, times as DateTime64 in UTC."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"fromUnixTimestamp64Micro({micros(value)}, 'UTC')"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"no ClickHouse literal for {type(value).__name__}")


def micros(value: dt.datetime) -> int:
    """Microseconds since the epoch (exact: no float on the way)."""
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=value)


CLICKHOUSE = Dialect(
    templates={
        "$eq": "{0} = {1}",
        "$ne": "(isNull({0}) OR {0} != {1})",
        "$in": "has({1}, {0})",
        "$nin": "NOT has({1}, {0})",
        "$like": "{0} LIKE {1}",
        "$ilike": "{0} ILIKE {1}",
        "$nlike": "ifNull(NOT ({0} LIKE {1}), 1)",
        "$nilike": "ifNull(NOT ({0} ILIKE {1}), 1)",
        **COMPARISONS,
    },
    literal=literal,
    format=lambda template, *parts: template.format(*parts),
    combine=lambda parts, joiner: "(" + f" {joiner} ".join(parts) + ")",
)


def _raw(keys: Sequence[str | int]) -> str:
    """The JSON text at the path (numbers re-written by ClickHouse), '' when missing."""
    if not keys:
        return "data"
    return f"JSONExtractRaw(data, {', '.join(literal(k + 1 if isinstance(k, int) else k) for k in keys)})"


def _string(keys: Sequence[str | int]) -> str:
    if not keys:
        return "JSONExtractString(data)"  # never a string: data is an object
    return f"JSONExtractString(data, {', '.join(literal(k + 1 if isinstance(k, int) else k) for k in keys)})"


def number_expr(path: str) -> str:
    """The meter value at `path`: a number, or a string holding one, within Decimal(38, 19); else NULL."""
    keys = json_path_keys(path) or []
    raw = _raw(keys)
    text = f"if(startsWith({raw}, '\"'), trimBoth({_string(keys)}), {raw})"
    return f"toDecimal128OrNull({text}, 19)"


def text_expr(path: str) -> str:
    """The value at `path` as text (a string's text, a number or boolean as written); NULL for anything else."""
    keys = json_path_keys(path) or []
    raw = _raw(keys)
    return (
        f"multiIf(startsWith({raw}, '\"'), toNullable({_string(keys)}), "
        f"{raw} IN ('', 'null') OR startsWith({raw}, '{{') OR startsWith({raw}, '['), NULL, toNullable({raw}))"
    )


def readings_columns(meter: Meter) -> dict[str, str]:
    """`v` (the value; NULL for COUNT and UNIQUE_COUNT), `u` (the distinct value of UNIQUE_COUNT, '' otherwise)
    and `g0`, `g1`, … (groupBy values as text, keys sorted), as expressions over an event row."""
    path = meter.value_property or "$"
    columns = {
        "v": "CAST(NULL AS Nullable(Decimal(38, 19)))"
        if meter.aggregation in (MeterAggregation.COUNT, MeterAggregation.UNIQUE_COUNT)
        else number_expr(path),
        "u": text_expr(path) if meter.aggregation == MeterAggregation.UNIQUE_COUNT else "''",
    }
    for i, key in enumerate(sorted(meter.group_by)):
        columns[f"g{i}"] = text_expr(meter.group_by[key])
    return columns


def eligible(meter: Meter) -> list[str]:
    """Conditions (over the columns of `readings_columns`) for an event to count: a value the meter can read."""
    if meter.aggregation == MeterAggregation.UNIQUE_COUNT:
        return ["u IS NOT NULL"]
    if meter.aggregation == MeterAggregation.COUNT:
        return []
    return ["v IS NOT NULL"]


def group_column(meter: Meter, key: str) -> str:
    return f"g{sorted(meter.group_by).index(key)}"


def group_columns(meter: Meter) -> list[str]:
    return [f"g{i}" for i in range(len(meter.group_by))]


def partials(meter: Meter) -> list[tuple[str, str, str, str]]:
    """The partial aggregates a meter's rows carry: (column, type, its value for one event, how rows combine).
    `n` counts the events that count for the meter; `latest` is the greatest (time, ingestion time, source, id,
    value), so the value of the last event wins (the key is unique: values never decide)."""
    columns = [("n", "UInt64", "toUInt64(1)", "sum"), ("first_time", TIME, "time", "min"),
               ("last_time", TIME, "time", "max")]
    value = "assumeNotNull(v)"
    aggregation = meter.aggregation
    if aggregation in (MeterAggregation.SUM, MeterAggregation.AVG):  # in Decimal256: sums pass Decimal(38, 19)'s range
        columns.append(("total", "Decimal(76, 19)", f"toDecimal256({value}, 19)", "sum"))
    elif aggregation == MeterAggregation.MIN:
        columns.append(("low", DECIMAL, value, "min"))
    elif aggregation == MeterAggregation.MAX:
        columns.append(("high", DECIMAL, value, "max"))
    elif aggregation == MeterAggregation.LATEST:
        columns.append(("latest", f"Tuple({TIME}, {TIME}, String, String, {DECIMAL})",
                        f"(time, ingested_at, source, id, {value})", "max"))
    return columns


def row_columns(meter: Meter) -> list[str]:
    """The columns of a meter's rows, in order: `resolution` (0 for an event, else the bucket's), `t` (the event's
    time or the bucket's start), `subject` ('' in buckets of all subjects), `uvalue` (UNIQUE_COUNT's distinct
    value, '' otherwise), the groupBy values `g0`, `g1`, … (keys sorted), then the partials."""
    return ["resolution", "t", "subject", "uvalue", *group_columns(meter), *(p[0] for p in partials(meter))]


def event_rows(meter: Meter, where: Sequence[str]) -> str:
    """The meter's events that count for it and match `where` (conditions over the events table's columns), one
    row each, in `row_columns` order. Each event's JSON is read once here."""
    readings = ", ".join(f"{expr} AS {name}" for name, expr in readings_columns(meter).items())
    conditions = [f"type = {literal(meter.event_type)}", *where]
    if meter.event_from is not None:
        conditions.append(f"time >= {literal(meter.event_from)}")
    uvalue = "assumeNotNull(u)" if meter.aggregation == MeterAggregation.UNIQUE_COUNT else "''"
    values = [f"{expr} AS {name}" for name, _, expr, _ in partials(meter)]
    columns = ["toUInt8(0) AS resolution", "time AS t", "subject", f"{uvalue} AS uvalue", *group_columns(meter), *values]
    inner = (f"SELECT time, subject, ingested_at, source, id, {readings} FROM {EVENTS_TABLE} "
             f"WHERE {' AND '.join(conditions)}")
    outer = eligible(meter)
    return f"SELECT {', '.join(columns)} FROM ({inner}){' WHERE ' + ' AND '.join(outer) if outer else ''}"
