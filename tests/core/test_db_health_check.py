"""The connection health check (openmeter_site/core/db): no round trip for a sound idle connection, a reconnect
for one the server has closed."""

import time

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def backend_pid() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def terminate(pid: int) -> None:
    params = connection.get_connection_params()
    with psycopg.connect(
        host=params.get("host"), port=params.get("port"), user=params.get("user"), dbname=params["dbname"],
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_sound_idle_connection_is_usable():
    backend_pid()
    assert connection.is_usable()


def test_a_connection_the_server_closed_is_replaced_before_the_next_use():
    pid = backend_pid()
    terminate(pid)
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:  # the server's goodbye is on its way
        time.sleep(0.01)
    assert not connection.is_usable()

    connection.close_if_unusable_or_obsolete()  # what Django does when a request starts
    connection.close_if_health_check_failed()  # and before the request's first query
    new_pid = backend_pid()
    assert new_pid != pid
    assert connection.is_usable()


def test_a_prepared_statement_as_the_first_query_of_a_request_reconnects_too():
    """The API key look-up is a prepared statement and the first query of every request."""
    from openmeter_site.core.sql import fetch_prepared

    pid = backend_pid()
    terminate(pid)
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.01)
    connection.close_if_unusable_or_obsolete()  # a new request: the health check is due again

    assert fetch_prepared("SELECT pg_backend_pid() AS pid, %(n)s::int + 1 AS n", {"n": 41})[0][1] == 42
    assert backend_pid() != pid
