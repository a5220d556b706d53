import datetime as dt

import pytest
import time_machine
from openmeter import Client

from tests.factories import ingest

NOW = dt.datetime(2026, 6, 10, 15, 0, tzinfo=dt.UTC)


def seed():
    ingest([
        {"subject": "customer-a", "time": NOW - dt.timedelta(hours=2), "data": {}},
        {"subject": "customer-a", "time": NOW - dt.timedelta(hours=1), "data": {}},
        {"subject": 'we"ird', "time": NOW - dt.timedelta(hours=3), "data": {}},
        {"subject": "customer-b", "time": NOW - dt.timedelta(days=1), "data": {}},  # yesterday: not counted
    ])


@pytest.mark.django_db
def test_debug_metrics_counts_todays_events_per_subject(api):
    seed()
    with time_machine.travel(NOW, tick=False):
        response = api.get("/api/v1/debug/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == (
        "# HELP openmeter_events Number of ingested events\n"
        "# TYPE openmeter_events counter\n"
        "# UNIT openmeter_events events\n"
        'openmeter_events_total{subject="customer-a"} 2.0\n'
        'openmeter_events_total{subject="we\\"ird"} 1.0\n'
    )


@pytest.mark.django_db
def test_debug_metrics_needs_an_api_key(client):
    response = client.get("/api/v1/debug/metrics")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.django_db(transaction=True)
def test_debug_metrics_through_the_python_client(live_server_url, api_key):
    ingest([{"subject": "customer-a", "time": dt.datetime.now(dt.UTC), "data": {}}])
    text = Client(endpoint=live_server_url, token=api_key).debug.metrics()
    assert 'openmeter_events_total{subject="customer-a"} 1.0' in text
