"""Two requests writing the same key at once: the second waits for the first and answers what it would have
answered one after the other (a 409 for a meter slug, an update for a subject), never a 500.

The first write runs in a transaction that stays open until the second request waits on its row, so the race is
not left to timing."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from metering.models import Meter, Subject
from metering.services import meter_create, subjects_upsert
from tests.metering.test_ingest_concurrency import wait_for_lock_waiters

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def uncommitted(write: Callable[[], object]) -> Iterator[None]:
    """Runs `write` in another session's transaction and commits it when the block ends."""
    written, release = threading.Event(), threading.Event()

    def run() -> None:
        try:
            with transaction.atomic():
                write()
                written.set()
                release.wait(20)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert written.wait(20)
    try:
        yield
    finally:
        release.set()
        thread.join(20)


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list]:
    answers: list = []

    def run() -> None:
        try:
            answers.append(call())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answers


def test_a_meter_created_twice_at_once_is_a_201_and_a_409(api):
    # given a create of meter `calls` that has inserted its row and not committed yet
    with uncommitted(lambda: meter_create(slug="calls", aggregation="COUNT", event_type="call")):
        # when the API creates the same slug, its check sees no meter and its insert waits for the first
        body = {"slug": "calls", "aggregation": "COUNT", "eventType": "call"}
        thread, answers = in_thread(lambda: api.post("/api/v1/meters", body, format="json"))
        wait_for_lock_waiters(1)
    thread.join(20)
    # then it is a 409, not the unique index's error as a 500
    [response] = answers
    assert response.status_code == 409, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == "meter with slug 'calls' already exists"
    assert Meter.objects.filter(slug="calls").count() == 1


def test_a_subject_upserted_twice_at_once_is_created_once_and_updated(api):
    # given an upsert that has created subject `acme` and not committed yet
    with uncommitted(lambda: subjects_upsert(items=[{"key": "acme", "display_name": "first"}])):
        # when the API upserts `acme` (and `zeta`, new) meanwhile
        body = [{"key": "zeta", "displayName": "Zeta"}, {"key": "acme", "displayName": "second"}]
        thread, answers = in_thread(lambda: api.post("/api/v1/subjects", body, format="json"))
        wait_for_lock_waiters(1)
    thread.join(20)
    # then it waits for the first and updates the subject it made
    [response] = answers
    assert response.status_code == 200, response.content
    assert [s["displayName"] for s in response.json()] == ["Zeta", "second"]
    assert dict(Subject.objects.values_list("key", "display_name")) == {"acme": "second", "zeta": "Zeta"}


def test_any_other_unique_violation_is_a_409_and_other_integrity_errors_stay_500s():
    from django.db import IntegrityError

    from openmeter_site.api.problems import django_exception_problem

    with pytest.raises(IntegrityError) as unique, transaction.atomic():
        Subject.objects.create(key="twice")
        Subject.objects.create(key="twice")
    response = django_exception_problem(unique.value, None)
    assert (response.status_code, response["Content-Type"]) == (409, "application/problem+json")
    with pytest.raises(IntegrityError) as not_null, transaction.atomic(), connection.cursor() as cur:
        cur.execute("INSERT INTO metering_subject (key) VALUES ('no-id')")
    assert django_exception_problem(not_null.value, None) is None
