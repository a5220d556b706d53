"""The connection health check (openmeter_site/core/db): no round trip for a sound idle connection, a reconnect
for one the server has closed."""

import time

import psycopg
import pytest
from django.db import connection

from openmeter_site.core.sql import fetch_prepared

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


def terminate_and_wait(pid: int) -> None:
    """Kill the backend and wait until its goodbye has reached our socket."""
    terminate(pid)
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_sound_idle_connection_is_usable():
    backend_pid()
    assert connection.is_usable()


def test_a_connection_the_server_closed_is_replaced_before_the_next_use():
    pid = backend_pid()
    terminate_and_wait(pid)
    assert not connection.is_usable()

    connection.close_if_unusable_or_obsolete()  # what Django does when a request starts
    connection.close_if_health_check_failed()  # and before the request's first query
    new_pid = backend_pid()
    assert new_pid != pid
    assert connection.is_usable()


def test_a_prepared_statement_as_the_first_query_of_a_request_reconnects_too():
    """The API key look-up is a prepared statement and the first query of every request."""
    pid = backend_pid()
    terminate_and_wait(pid)
    connection.close_if_unusable_or_obsolete()  # a new request: the health check is due again

    [(new_pid,)] = fetch_prepared("SELECT pg_backend_pid()", {})
    assert new_pid != pid
