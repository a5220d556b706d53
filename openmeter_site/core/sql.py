"""Statements of the hot paths whose text never changes, prepared once per database connection.

Django runs every query through client-side binding, which PostgreSQL parses and plans on each execution; for
the entitlement value read the planning costs more than running the statements. `fetch_prepared` executes
a statement with server-side binding on Django's connection (same transaction), and psycopg prepares it on
first use when `OPENMETER_DB_PREPARED_STATEMENTS` is on (`prepare_threshold` in settings; Django's own queries
are never prepared). Such statements do not show in Django's query logging.
"""

from collections.abc import Mapping
from typing import Any

from django.db import connection
from psycopg import Cursor


def fetch_prepared(query: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """All rows of `query` (`%(name)s` placeholders; a literal `%` written `%%`)."""
    connection.ensure_connection()
    with Cursor(connection.connection) as cur:
        cur.execute(query, params, prepare=True)
        return cur.fetchall()
