"""Inserting many new rows of one model with COPY: the period close's bulk writes.

Django's `bulk_create` on PostgreSQL prepares every value through its SQL compiler and, with client-side binding,
quotes each column's array of values in Python: at 10,000 invoices that was half of the period close's Python
time. COPY sends the rows in one stream that psycopg's C adapters encode.
"""

import functools
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models


def copy_insert(objs: Sequence[models.Model]) -> None:
    """Insert `objs` (new instances of one model) as `bulk_create` would: each field's `pre_save` (auto_now) and
    `get_db_prep_save` (our fields' range checks) give the values; no signals, nothing read back. The COPY passes
    through the connection's execute wrappers (`connection.execute_wrapper`) as Django's statements do, but is not
    in Django's debug query log."""
    if not objs:
        return
    connection = connections[DEFAULT_DB_ALIAS]  # not the `django.db.connection` proxy: a lookup per value
    model = type(objs[0])
    # a serial id is the database's to make (and is not read back)
    fields = [f for f in model._meta.concrete_fields if not f.generated and not f.db_returning]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    rows = [[f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields] for obj in objs]

    def copy(sql: str, params: list[list[Any]], many: bool, context: dict[str, Any]) -> None:
        with context["cursor"].cursor.copy(sql) as stream:
            for row in params:
                stream.write_row(row)

    with connection.cursor() as cursor, connection.wrap_database_errors:
        executor = copy
        for wrapper in reversed(connection.execute_wrappers):
            executor = functools.partial(wrapper, executor)
        executor(f"COPY {table} ({columns}) FROM STDIN", rows, False, {"connection": connection, "cursor": cursor})
    for obj in objs:  # saved: a later save() updates the row rather than inserting it again
        obj._state.adding = False
        obj._state.db = connection.alias
