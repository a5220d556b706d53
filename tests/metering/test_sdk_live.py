"""The main flows through the official Python client against the real HTTP stack (gunicorn)."""

import datetime as dt
import uuid

import pytest
import requests
from openmeter import Client

from metering.postgres.fold import fold_all

pytestmark = pytest.mark.django_db(transaction=True)

UTC = dt.UTC


@pytest.fixture
def client(live_server_url, api_key):
    return Client(endpoint=live_server_url, token=api_key, retry_total=0)


def test_ingest_then_query_through_the_python_client(client):
    # given a meter
    slug = f"tokens_{uuid.uuid4().hex[:8]}"
    event_type = f"prompt-{slug}"
    meter = client.meters.create(
        {
            "slug": slug,
            "aggregation": "SUM",
            "eventType": event_type,
            "valueProperty": "$.tokens",
            "groupBy": {"model": "$.model"},
        }
    )
    assert meter.slug == slug
    # when events arrive through each ingest method
    t0 = (dt.datetime.now(UTC) - dt.timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)

    def event(i, tokens, model):
        return {
            "id": f"{slug}-{i}",
            "source": "sdk-test",
            "specversion": "1.0",
            "type": event_type,
            "subject": "customer-1",
            "time": (t0 + dt.timedelta(minutes=i)).isoformat(),
            "data": {"tokens": tokens, "model": model},
        }

    client.events.ingest_events([event(1, 10, "gpt-4"), event(2, "2.5", "gpt-3")])
    client.events.ingest_event(event(3, 7, "gpt-4"))
    client.events.ingest_events_json([event(4, 1, "gpt-4"), event(1, 10, "gpt-4")])  # the repeat is a duplicate
    fold_all()
    client.events.ingest_events([event(5, 100, "gpt-4")])  # still pending
    # then the query sees every event once: gpt-4 = 10 + 7 + 1 + 100, gpt-3 = 2.5
    result = client.meters.query_json(
        slug,
        from_parameter=t0,
        to=t0 + dt.timedelta(hours=1),
        window_size="HOUR",
        group_by=["model"],
        subject=["customer-1"],
    )
    rows = {row.group_by["model"]: row.value for row in result.data}
    assert rows == {"gpt-4": 118, "gpt-3": 2.5}
    assert {row.subject for row in result.data} == {"customer-1"}
    assert result.data[0].window_start == t0
    csv_text = client.meters.query_csv(slug, from_parameter=t0, to=t0 + dt.timedelta(hours=1))
    assert csv_text.splitlines()[1].endswith(",120.5")
    assert client.meters.list_subjects(slug, from_parameter=t0) == ["customer-1"]
    assert client.meters.list_group_by_values(slug, "model", from_parameter=t0) == ["gpt-3", "gpt-4"]
    listed = client.events.list(subject="customer-1", from_parameter=t0 - dt.timedelta(hours=1))
    assert {e.event.id for e in listed} >= {f"{slug}-{i}" for i in range(1, 6)}
    assert "openmeter_events_total" in client.debug.metrics()


def test_meter_and_subject_crud_through_the_python_client(client):
    slug = f"count_{uuid.uuid4().hex[:8]}"
    created = client.meters.create({"slug": slug, "aggregation": "COUNT", "eventType": "x"})
    assert client.meters.get(created.id).slug == slug
    updated = client.meters.update(slug, {"name": "Renamed", "groupBy": {"a": "$.a"}})
    assert (updated.name, updated.group_by) == ("Renamed", {"a": "$.a"})
    assert slug in [m.slug for m in client.meters.list()]
    client.meters.delete(slug)
    assert slug not in [m.slug for m in client.meters.list()]
    progress = client.progress.get_progress(f"meter-{created.id}-rollups")
    assert progress.total == progress.success
    key = f"team/{uuid.uuid4().hex[:6]}"  # a key with a slash
    [subject] = client.subjects.upsert([{"key": key, "displayName": "Team"}])
    assert subject.key == key
    assert client.subjects.get(key).display_name == "Team"
    client.subjects.delete(key)
    assert key not in [s.key for s in client.subjects.list()]


def test_path_parameter_with_a_slash_reaches_the_view(live_server_url, api_key):
    headers = {"Authorization": f"Bearer {api_key}"}
    key = f"org/{uuid.uuid4().hex[:6]}/user"
    response = requests.post(f"{live_server_url}/api/v1/subjects", json=[{"key": key}], headers=headers)
    assert response.status_code == 200
    encoded = key.replace("/", "%2F")
    response = requests.get(f"{live_server_url}/api/v1/subjects/{encoded}", headers=headers)
    assert response.status_code == 200
    assert response.json()["key"] == key
    response = requests.get(f"{live_server_url}/api/v1/meters/a%2Fb/query", headers=headers)
    assert response.status_code == 404
    assert "a/b" in response.json()["detail"]
