"""The spec's filter objects (`FilterString`, `FilterTime`, `FilterIDExact`) compiled to SQL over one expression.

Values are bound as literals by psycopg (`sql.Literal`), never formatted into the text.
"""

from collections.abc import Callable
from typing import Any

from psycopg import sql

from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.time import parse_rfc3339

Compiler = Callable[[sql.Composable, Any, str], sql.Composable]

_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_LIKES = {"$like": "LIKE", "$ilike": "ILIKE"}
_NOT_LIKES = {"$nlike": "LIKE", "$nilike": "ILIKE"}


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a string, got {value!r}")
    return value


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{field}: expected an array of strings")
    return value


def _combine(parts: list[sql.Composable], joiner: str, field: str) -> sql.Composable:
    if not parts:
        raise InvalidInput(f"{field}: empty filter")
    return sql.SQL("(") + sql.SQL(f" {joiner} ").join(parts) + sql.SQL(")")


def _nested(expr: sql.Composable, op: str, value: Any, field: str, compile_one: Compiler) -> sql.Composable:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{field}.{op}: expected a non-empty array of filters")
    parts = [compile_one(expr, item, f"{field}.{op}[{i}]") for i, item in enumerate(value)]
    return _combine(parts, "AND" if op == "$and" else "OR", field)


def _string_op(expr: sql.Composable, op: str, value: Any, field: str) -> sql.Composable:
    where = f"{field}.{op}"
    if op == "$eq":
        return sql.SQL("{} = {}").format(expr, sql.Literal(_string(value, where)))
    if op == "$ne":
        return sql.SQL("{} IS DISTINCT FROM {}").format(expr, sql.Literal(_string(value, where)))
    if op == "$in":
        return sql.SQL("{} = ANY({}::text[])").format(expr, sql.Literal(_strings(value, where)))
    if op == "$nin":
        return sql.SQL("coalesce({} <> ALL({}::text[]), true)").format(expr, sql.Literal(_strings(value, where)))
    if op in _LIKES:
        return sql.SQL("{} {} {}").format(expr, sql.SQL(_LIKES[op]), sql.Literal(_string(value, where)))
    if op in _NOT_LIKES:
        return sql.SQL("coalesce({} NOT {} {}, true)").format(
            expr, sql.SQL(_NOT_LIKES[op]), sql.Literal(_string(value, where))
        )
    if op in _COMPARISONS:
        return sql.SQL("{} {} {}").format(expr, sql.SQL(_COMPARISONS[op]), sql.Literal(_string(value, where)))
    raise InvalidInput(f"{field}: unknown filter operator {op!r}")


def compile_filter_string(expr: sql.Composable, spec: Any, field: str) -> sql.Composable:
    """`{"$in": ["a", "b"]}` over `expr` → `expr = ANY('{a,b}')`; several operators are ANDed."""
    if not isinstance(spec, dict):
        raise InvalidInput(f'{field}: expected a filter object such as {{"$eq": "value"}}')
    parts = []
    for op, value in spec.items():
        if value is None:
            continue
        if op in ("$and", "$or"):
            parts.append(_nested(expr, op, value, field, compile_filter_string))
        else:
            parts.append(_string_op(expr, op, value, field))
    return _combine(parts, "AND", field)


def compile_filter_time(expr: sql.Composable, spec: Any, field: str) -> sql.Composable:
    if not isinstance(spec, dict):
        raise InvalidInput(f'{field}: expected a filter object such as {{"$gte": "2025-01-01T00:00:00Z"}}')
    parts = []
    for op, value in spec.items():
        if value is None:
            continue
        if op in ("$and", "$or"):
            parts.append(_nested(expr, op, value, field, compile_filter_time))
        elif op in _COMPARISONS:
            moment = parse_rfc3339(value, f"{field}.{op}")
            parts.append(sql.SQL("{} {} {}").format(expr, sql.SQL(_COMPARISONS[op]), sql.Literal(moment)))
        else:
            raise InvalidInput(f"{field}: unknown time filter operator {op!r}")
    return _combine(parts, "AND", field)
