"""Per-API-key limits: a 429 problem+json with Retry-After beyond the limit, per key, the events endpoint on its own."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from openmeter_site.api.throttling import parse_rate
from openmeter_site.core.models import ApiKey
from tests.conftest import free_port

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
AT_HALF_PAST = dt.datetime(2026, 3, 1, 12, 0, 30, tzinfo=dt.UTC)  # 30 s left in the minute


def client_with_new_key() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue('throttled')[1]}")
    return client


def test_a_key_over_the_api_limit_gets_429_with_retry_after(settings):
    settings.OPENMETER_API_RATE_LIMIT = "3/minute"
    first, second = client_with_new_key(), client_with_new_key()
    with time_machine.travel(AT_HALF_PAST, tick=False):
        statuses = [first.get("/api/v1/info/currencies").status_code for _ in range(4)]
        refused = first.get("/api/v1/meters")
        other_key = second.get("/api/v1/info/currencies")
        ingest = first.post("/api/v1/events", [], format="json")  # the events endpoint has its own limit (none)
    assert statuses == [200, 200, 200, 429]
    assert refused.status_code == 429
    assert refused["Content-Type"] == PROBLEM
    assert refused["Retry-After"] == "30"
    assert refused.json()["status"] == 429
    assert other_key.status_code == 200
    assert ingest.status_code != 429
    # the next minute starts a new window
    with time_machine.travel(AT_HALF_PAST + dt.timedelta(seconds=30), tick=False):
        assert first.get("/api/v1/info/currencies").status_code == 200


def test_ingest_has_its_own_limit_and_none_by_default(settings):
    client = client_with_new_key()
    event = {"source": "s", "specversion": "1.0", "type": "t", "subject": "acme"}
    with time_machine.travel(AT_HALF_PAST, tick=False):
        assert all(client.post("/api/v1/events", [{**event, "id": f"a{i}"}], format="json").status_code == 204
                   for i in range(5))
        settings.OPENMETER_INGEST_RATE_LIMIT = "2/hour"
        statuses = [client.post("/api/v1/events", [{**event, "id": f"b{i}"}], format="json").status_code
                    for i in range(3)]
        response = client.post("/api/v1/events", [{**event, "id": "c"}], format="json")
    assert statuses == [204, 204, 429]
    assert response["Retry-After"] == str(3600 - 30)
    assert client.get("/api/v1/info/currencies").status_code == 200  # other endpoints: the API limit (none)


def test_requests_pass_when_redis_does_not_answer(settings):
    settings.OPENMETER_API_RATE_LIMIT = "1/minute"
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    client = client_with_new_key()
    assert [client.get("/api/v1/info/currencies").status_code for _ in range(3)] == [200, 200, 200]


def test_rates_read_as_documented():
    assert parse_rate("OPENMETER_API_RATE_LIMIT", "600/minute") == (600, 60)
    assert parse_rate("OPENMETER_API_RATE_LIMIT", " 5 / second ") == (5, 1)
    assert parse_rate("OPENMETER_API_RATE_LIMIT", "") is None
    with pytest.raises(ImproperlyConfigured, match="OPENMETER_INGEST_RATE_LIMIT='10/min'"):
        parse_rate("OPENMETER_INGEST_RATE_LIMIT", "10/min")
