"""Concurrent ingest batches that share (source, id) pairs, through the real ingest path (issue 13, item 4)."""

import json
import threading
import time

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from metering.models import Event, PendingEvent
from tests import conftest

pytestmark = pytest.mark.django_db(transaction=True)

IDS = [f"evt-{n:03d}" for n in range(40)]
MIDDLE = IDS[20]


def batch(ids: list[str]) -> str:
    return json.dumps(
        [{"id": i, "source": "svc", "specversion": "1.0", "type": "request", "subject": "s", "data": {"n": n}}
         for n, i in enumerate(ids)]
    )


def lock_waiters(db_name: str) -> int:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", [db_name]
        )
        return cur.fetchone()[0]


def wait_for_lock_waiters(count: int) -> None:
    db_name = connection.settings_dict["NAME"]
    deadline = time.monotonic() + 10
    while lock_waiters(db_name) < count:
        assert time.monotonic() < deadline, f"fewer than {count} sessions waiting on a lock"
        time.sleep(0.02)


def test_batches_with_the_same_ids_in_opposite_orders_never_deadlock(api_key):
    # given a third session holding the middle id uncommitted, so that both batches stop on it halfway
    # (ascending: after the first half; descending: after the second half), each holding the ids it inserted
    blocker = psycopg.connect(conftest.test_database_url().replace("postgres://", "postgresql://"))
    blocker.execute(
        "INSERT INTO metering_eventkey (source, id) VALUES ('svc', %s)",
        [MIDDLE],
    )
    responses: dict[str, int] = {}

    def send(name: str, ids: list[str]) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        try:
            response = client.generic(
                "POST", "/api/v1/events", batch(ids), content_type="application/cloudevents-batch+json"
            )
            responses[name] = response.status_code
        finally:
            connection.close()

    threads = [
        threading.Thread(target=send, args=("ascending", IDS)),
        threading.Thread(target=send, args=("descending", IDS[::-1])),
    ]
    for thread in threads:
        thread.start()
    # when both batches wait and the blocker gives the middle id up
    wait_for_lock_waiters(2)
    blocker.rollback()
    blocker.close()
    for thread in threads:
        thread.join(30)
    # then both batches are accepted and every event is stored once
    assert responses == {"ascending": 204, "descending": 204}
    assert sorted(Event.objects.values_list("id", flat=True)) == IDS
    assert PendingEvent.objects.count() == 40


def test_a_batch_with_the_same_event_twice_stores_it_once(api):
    body = batch(["a", "b", "a", "c", "b"])
    response = api.generic("POST", "/api/v1/events", body, content_type="application/cloudevents-batch+json")
    assert response.status_code == 204
    # the first of each id in the batch is the one kept, as when the same event comes in a later batch
    assert sorted(Event.objects.values_list("id", "data")) == [("a", {"n": 0}), ("b", {"n": 1}), ("c", {"n": 3})]
    assert PendingEvent.objects.count() == 3
