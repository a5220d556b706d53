"""The spec's filter objects (`FilterString`, `FilterTime`, `FilterIDExact`) compiled to SQL over one expression.

The rules (operators, nesting, error messages) are the same for every event store; a `Dialect` says how one SQL
engine writes each operator and a literal. PostgreSQL's (the default) composes `psycopg.sql` objects: values are
bound as literals by psycopg (`sql.Literal`), never formatted into the text.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.time import parse_rfc3339


@dataclass(frozen=True)
class Dialect:
    """Templates over the expression `{0}` and the value `{1}`, per operator, and how to make and combine SQL."""

    templates: Mapping[str, str]
    literal: Callable[[Any], Any]
    format: Callable[..., Any]  # (template, expression, value) -> SQL
    combine: Callable[[Sequence[Any], str], Any]  # (parts, "AND" / "OR") -> "(a AND b)"


COMPARISONS = {"$gt": "{0} > {1}", "$gte": "{0} >= {1}", "$lt": "{0} < {1}", "$lte": "{0} <= {1}"}
_STRING_OPS = ("$eq", "$ne", "$in", "$nin", "$like", "$ilike", "$nlike", "$nilike", *COMPARISONS)
_LISTS = ("$in", "$nin")

POSTGRES = Dialect(
    templates={
        "$eq": "{0} = {1}",
        "$ne": "{0} IS DISTINCT FROM {1}",
        "$in": "{0} = ANY({1}::text[])",
        "$nin": "coalesce({0} <> ALL({1}::text[]), true)",
        "$like": "{0} LIKE {1}",
        "$ilike": "{0} ILIKE {1}",
        "$nlike": "coalesce({0} NOT LIKE {1}, true)",
        "$nilike": "coalesce({0} NOT ILIKE {1}, true)",
        **COMPARISONS,
    },
    literal=sql.Literal,
    format=lambda template, *parts: sql.SQL(template).format(*parts),
    combine=lambda parts, joiner: sql.SQL("(") + sql.SQL(f" {joiner} ").join(parts) + sql.SQL(")"),
)

Compiler = Callable[[Any, Any, str, Dialect], Any]


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a string, got {value!r}")
    return value


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{field}: expected an array of strings")
    return value


def _combine(parts: list[Any], joiner: str, field: str, dialect: Dialect) -> Any:
    if not parts:
        raise InvalidInput(f"{field}: empty filter")
    return dialect.combine(parts, joiner)


def _nested(expr: Any, op: str, value: Any, field: str, compile_one: Compiler, dialect: Dialect) -> Any:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{field}.{op}: expected a non-empty array of filters")
    parts = [compile_one(expr, item, f"{field}.{op}[{i}]", dialect) for i, item in enumerate(value)]
    return _combine(parts, "AND" if op == "$and" else "OR", field, dialect)


def _string_op(expr: Any, op: str, value: Any, field: str, dialect: Dialect) -> Any:
    if op not in _STRING_OPS:
        raise InvalidInput(f"{field}: unknown filter operator {op!r}")
    where = f"{field}.{op}"
    checked = _strings(value, where) if op in _LISTS else _string(value, where)
    return dialect.format(dialect.templates[op], expr, dialect.literal(checked))


def compile_filter_string(expr: Any, spec: Any, field: str, dialect: Dialect = POSTGRES) -> Any:
    """`{"$in": ["a", "b"]}` over `expr` → `expr = ANY('{a,b}')`; several operators are ANDed."""
    if not isinstance(spec, dict):
        raise InvalidInput(f'{field}: expected a filter object such as {{"$eq": "value"}}')
    parts = []
    for op, value in spec.items():
        if value is None:
            continue
        if op in ("$and", "$or"):
            parts.append(_nested(expr, op, value, field, compile_filter_string, dialect))
        else:
            parts.append(_string_op(expr, op, value, field, dialect))
    return _combine(parts, "AND", field, dialect)


def compile_filter_time(expr: Any, spec: Any, field: str, dialect: Dialect = POSTGRES) -> Any:
    if not isinstance(spec, dict):
        raise InvalidInput(f'{field}: expected a filter object such as {{"$gte": "2025-01-01T00:00:00Z"}}')
    parts = []
    for op, value in spec.items():
        if value is None:
            continue
        if op in ("$and", "$or"):
            parts.append(_nested(expr, op, value, field, compile_filter_time, dialect))
        elif op in COMPARISONS:
            moment = parse_rfc3339(value, f"{field}.{op}")
            parts.append(dialect.format(dialect.templates[op], expr, dialect.literal(moment)))
        else:
            raise InvalidInput(f"{field}: unknown time filter operator {op!r}")
    return _combine(parts, "AND", field, dialect)
