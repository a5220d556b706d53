"""PostgreSQL unreachable or restarting (issue 13, item 3): a live gunicorn answers 503 with Retry-After, never
500, and serves again once the database is back. The faults are real: a database address nothing listens on, and
backends terminated with pg_terminate_backend while a request runs."""

import threading
import time

import psycopg
import pytest
import requests
from django.db import DatabaseError, connection, transaction

from openmeter_site.core.db.availability import database_unavailable
from openmeter_site.core.models import ApiKey
from tests import conftest
from tests.contract.test_routes import concrete, operations

pytestmark = pytest.mark.django_db(transaction=True)

PROBLEM = "application/problem+json"


def assert_unavailable(response: requests.Response, *, problem: bool = True) -> None:
    assert response.status_code == 503, (response.request.method, response.request.url, response.text[:300])
    assert response.headers["Retry-After"] == "2"
    if problem:
        assert response.headers["Content-Type"] == PROBLEM
        assert response.json()["detail"] == "the database is unavailable, retry later"


def test_every_operation_and_the_admin_answer_503_while_the_database_is_unreachable():
    nowhere = f"postgres://postgres@127.0.0.1:{conftest.free_port()}/openmeter"  # nothing listens there
    with conftest.gunicorn_server(DATABASE_URL=nowhere) as url, requests.Session() as http:
        for method, path in operations():
            body = None if method in ("GET", "DELETE") else {}
            token = "om_portal_any_token" if path.startswith("/api/v1/portal/meters/") else "om_any_key"
            headers = {"Authorization": f"Bearer {token}"}
            assert_unavailable(http.request(method, url + concrete(path), json=body, headers=headers, timeout=30))
        # without a key: a 401, decided without the database
        assert http.get(f"{url}/api/v1/meters", timeout=30).status_code == 401
        # the admin: a signed-in operator's session cannot be read
        assert_unavailable(http.get(f"{url}/admin/", cookies={"sessionid": "a" * 32}, timeout=30), problem=False)


def server_backends(db_name: str) -> list[int]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = "
            "'client backend' AND application_name <> 'test-lock-holder'", [db_name]
        )
        return [row[0] for row in cur.fetchall()]


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + 20
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_request_whose_backend_is_terminated_answers_503_and_the_next_one_is_served(django_db_blocker):
    # given a live server and an API key whose row another session holds locked, so that the request's
    # last-used update waits inside PostgreSQL
    key, raw = ApiKey.issue("outage")
    db_name = connection.settings_dict["NAME"]
    holder = psycopg.connect(conftest.test_database_url().replace("postgres://", "postgresql://"),
                             application_name="test-lock-holder")
    headers = {"Authorization": f"Bearer {raw}"}
    with conftest.gunicorn_server() as url:
        holder.execute("SELECT 1 FROM core_apikey WHERE id = %s FOR UPDATE", [key.pk])
        answers: list[requests.Response] = []
        request = threading.Thread(
            target=lambda: answers.append(requests.get(f"{url}/api/v1/meters", headers=headers, timeout=30))
        )
        request.start()

        def waiting_backends() -> list[int]:
            with connection.cursor() as cur:
                cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                            [db_name])
                return [row[0] for row in cur.fetchall()]

        wait_until(waiting_backends, "the request to wait for the lock")
        # when its backend is terminated, as a restart does
        [pid] = waiting_backends()
        with connection.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", [pid])
        request.join(30)
        holder.rollback()
        holder.close()
        # then that request answers 503 with Retry-After, and the next one gets a new connection
        [response] = answers
        assert_unavailable(response)
        assert requests.get(f"{url}/api/v1/meters", headers=headers, timeout=30).status_code == 200
    conftest.wait_for_no_connections(db_name, django_db_blocker)


def test_idle_connections_terminated_between_requests_are_replaced_without_an_error(api_key, django_db_blocker):
    db_name = connection.settings_dict["NAME"]
    headers = {"Authorization": f"Bearer {api_key}"}
    with conftest.gunicorn_server() as url, requests.Session() as http:
        for _ in range(4):  # the four threads each hold a connection
            assert http.get(f"{url}/api/v1/meters", headers=headers, timeout=30).status_code == 200
        # when every server backend is terminated between requests (a restart while the server is idle)
        with connection.cursor() as cur:
            for pid in server_backends(db_name):
                cur.execute("SELECT pg_terminate_backend(%s)", [pid])
        wait_until(lambda: not server_backends(db_name), "the backends to end")
        # then every next request is served on a new connection
        statuses = [http.get(f"{url}/api/v1/meters", headers=headers, timeout=30).status_code for _ in range(8)]
        assert statuses == [200] * 8
    conftest.wait_for_no_connections(db_name, django_db_blocker)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statements",
    [
        ["SELECT 1 / 0"],  # division_by_zero
        ["SELECT 'x'::int"],  # invalid_text_representation
        ["SET LOCAL statement_timeout = 1", "SELECT pg_sleep(1)"],  # query_canceled, an OperationalError too
        ["SELECT 1 FROM no_such_table"],  # undefined_table
    ],
)
def test_other_database_errors_are_not_unavailability_and_stay_500s(statements):
    # (terminated backends and refused connections are the tests above)
    with pytest.raises(DatabaseError) as raised, transaction.atomic(), connection.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    assert not database_unavailable(raised.value)
