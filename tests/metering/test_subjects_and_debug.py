import datetime as dt

import pytest
import time_machine

from metering.models import Subject
from tests.factories import ingest

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def test_subject_upsert_creates_and_partially_updates(api):
    response = api.post(
        "/api/v1/subjects", [{"key": "acme", "displayName": "Acme", "metadata": {"tier": "gold"}}], format="json"
    )
    assert response.status_code == 200
    [created] = response.json()
    assert (created["key"], created["displayName"], created["metadata"]) == ("acme", "Acme", {"tier": "gold"})
    # a second upsert that only sends stripeCustomerId keeps displayName and metadata
    response = api.post("/api/v1/subjects", [{"key": "acme", "stripeCustomerId": "cus_1"}, {"key": "beta"}], format="json")
    assert response.status_code == 200
    acme, beta = response.json()
    assert acme["id"] == created["id"]
    assert (acme["displayName"], acme["metadata"], acme["stripeCustomerId"]) == ("Acme", {"tier": "gold"}, "cus_1")
    assert beta["displayName"] is None
    assert [s["key"] for s in api.get("/api/v1/subjects").json()] == ["acme", "beta"]


def test_subject_get_by_key_or_id_and_delete(api):
    subject = Subject.objects.create(key="a b")  # keys with "/" are tested through the live server
    assert api.get(f"/api/v1/subjects/{subject.pk}").json()["key"] == "a b"
    assert api.get("/api/v1/subjects/a%20b").json()["id"] == subject.pk
    response = api.delete(f"/api/v1/subjects/{subject.pk}")
    assert response.status_code == 204
    missing = api.get(f"/api/v1/subjects/{subject.pk}")
    assert missing.status_code == 404
    assert missing["Content-Type"] == PROBLEM


@pytest.mark.parametrize(
    "body",
    [
        {"key": "not-an-array"},
        [{"displayName": "no key"}],
        [{"key": ""}],
        [{"key": "a"}, {"key": "a"}],
        [{"key": "a", "currentPeriodStart": "soon"}],
    ],
)
def test_subject_upsert_bad_input_is_400_and_writes_nothing(api, body):
    response = api.post("/api/v1/subjects", body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert not Subject.objects.exists()


@time_machine.travel(dt.datetime(2026, 2, 10, 12, tzinfo=dt.UTC), tick=False)
def test_debug_metrics_counts_events_per_subject_since_midnight_utc(api):
    midnight = dt.datetime(2026, 2, 10, tzinfo=dt.UTC)
    ingest(
        [
            {"subject": "a", "time": midnight, "data": {}},
            {"subject": "a", "time": midnight + dt.timedelta(hours=1), "data": {}},
            {"subject": 'b"q', "time": midnight + dt.timedelta(hours=2), "data": {}},
            {"subject": "a", "time": midnight - dt.timedelta(seconds=1), "data": {}},  # yesterday
        ]
    )
    response = api.get("/api/v1/debug/metrics", HTTP_ACCEPT="text/plain")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4"
    assert response.content.decode().splitlines() == [
        "# HELP openmeter_events_total Number of ingested events",
        "# TYPE openmeter_events_total counter",
        'openmeter_events_total{subject="a"} 2',
        'openmeter_events_total{subject="b\\"q"} 1',
    ]
    assert api.get("/api/v1/debug/metrics").status_code == 200  # any Accept
