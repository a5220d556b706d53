"""Statements of the hot paths whose text never changes, prepared once per database connection.

Django runs every query through client-side binding, which PostgreSQL parses and plans on each execution; for
the entitlement value read and the meter query the parsing and planning cost more than running the statements.
`fetch_prepared` executes a statement with server-side binding on Django's connection (same transaction, errors
wrapped as Django's), and psycopg prepares it on first use when `OPENMETER_DB_PREPARED_STATEMENTS` is on
(`prepare_threshold` in settings; Django's own queries are never prepared). Such statements do not show in
Django's query logging.

`cached_statement` keeps the text of such statements composed once per process: composing them with
`psycopg.sql` costs about as much as running them.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.db import connection
from psycopg import Cursor, sql

MAX_STATEMENTS = 1024
_STATEMENTS: dict[str, str] = {}


def fetch_prepared(query: str, params: Mapping[str, Any], *, binary: bool = False) -> list[tuple[Any, ...]]:
    """All rows of `query` (`%(name)s` placeholders; a literal `%` written `%%`). `binary`: results come in
    PostgreSQL's binary format (timestamps and numbers are not formatted as text and parsed back)."""
    connection.close_if_health_check_failed()  # as Django's own cursors do before a request's first query
    connection.ensure_connection()
    with connection.wrap_database_errors, Cursor(connection.connection) as cur:
        cur.execute(query, params, prepare=True, binary=binary)
        return cur.fetchall()


def cached_statement(key: Sequence[Any], prefix: str, compose: Callable[[], sql.Composable]) -> str:
    """`prefix` (hand-written, holding the statement's only placeholders) + the body `compose()` returns, with
    every `%` of the body's literals escaped. Composed once per process for each `key`: everything the body's
    text depends on."""
    cache_key = json.dumps(key, sort_keys=True, default=str)
    text = _STATEMENTS.get(cache_key)
    if text is None:
        connection.ensure_connection()
        text = prefix + compose().as_string(connection.connection).replace("%", "%%")
        if len(_STATEMENTS) >= MAX_STATEMENTS:
            _STATEMENTS.clear()
        _STATEMENTS[cache_key] = text
    return text
