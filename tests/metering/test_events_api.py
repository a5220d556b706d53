import datetime as dt
import json

import pytest
import time_machine

from tests.factories import CustomerFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 2, 10, 12, tzinfo=dt.UTC)
PROBLEM = "application/problem+json"


@pytest.fixture
def events(api):
    MeterFactory(slug="tokens", event_type="prompt", aggregation="SUM", value_property="$.tokens")
    MeterFactory(slug="users", event_type="prompt", aggregation="UNIQUE_COUNT", value_property="$.user")
    ingest(
        [
            {"id": "ok", "subject": "acme-1", "time": NOW - dt.timedelta(hours=1), "data": {"tokens": 5, "user": "u"}},
            {"id": "nan", "subject": "acme-2", "time": NOW - dt.timedelta(hours=2), "data": {"tokens": "x", "user": "u"}},
        ],
        type="prompt",
    )
    raw = (
        '{"id":"big","source":"tests","specversion":"1.0","type":"prompt","subject":"other",'
        '"time":"2026-02-10T09:00:00Z","data":{"tokens":0.1000000000000000000001,"user":"u"}}'
    )
    assert api.generic("POST", "/api/v1/events", raw, content_type="application/cloudevents+json").status_code == 204
    ingest([{"id": "orphan", "subject": "acme-1", "time": NOW - dt.timedelta(hours=4), "data": None}], type="nothing")
    ingest([{"id": "old", "subject": "acme-1", "time": NOW - dt.timedelta(days=4), "data": {}}], type="prompt")


@time_machine.travel(NOW, tick=False)
def test_list_newest_first_with_validation_errors_and_customers(api, events):
    acme = CustomerFactory(key="acme-1", subjects=["acme-2"])
    response = api.get("/api/v1/events")
    assert response.status_code == 200
    body = response.json()
    # the 4-day-old event is outside the default 72 h
    assert [e["event"]["id"] for e in body] == ["ok", "nan", "big", "orphan"]
    by_id = {e["event"]["id"]: e for e in body}
    assert by_id["ok"]["event"] == {
        "id": "ok",
        "source": "tests",
        "specversion": "1.0",
        "type": "prompt",
        "subject": "acme-1",
        "time": "2026-02-10T11:00:00Z",
        "data": {"tokens": 5, "user": "u"},
    }
    assert "validationError" not in by_id["ok"]
    assert by_id["ok"]["customerId"] == acme.pk
    assert by_id["nan"]["customerId"] == acme.pk  # through usageAttribution.subjectKeys
    assert "tokens" in by_id["nan"]["validationError"] and "not a number" in by_id["nan"]["validationError"]
    assert by_id["orphan"]["validationError"] == "no meter found for event type: nothing"
    assert "data" not in by_id["orphan"]["event"]
    assert "customerId" not in by_id["big"]
    assert by_id["ok"]["ingestedAt"].endswith("Z") and by_id["ok"]["storedAt"].endswith("Z")
    assert b"0.1000000000000000000001" in response.content  # data numbers written exactly


@time_machine.travel(NOW, tick=False)
def test_list_filters(api, events):
    ids = lambda params: [e["event"]["id"] for e in api.get("/api/v1/events", params).json()]  # noqa: E731
    assert ids({"from": "2026-02-05T00:00:00Z"}) == ["ok", "nan", "big", "orphan", "old"]
    assert ids({"from": "2026-02-05T00:00:00Z", "to": "2026-02-10T09:30:00Z"}) == ["big", "orphan", "old"]
    assert ids({"subject": "acme"}) == ["ok", "nan", "orphan"]  # partial match
    assert ids({"id": "o"}) == ["ok", "orphan"]
    assert ids({"limit": "2"}) == ["ok", "nan"]
    acme = CustomerFactory(key="acme-2")
    assert ids({"customerId": [acme.pk]}) == ["nan"]


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    "params",
    [
        {"from": "2025-12-01T00:00:00Z"},
        {"limit": "0"},
        {"limit": "101"},
        {"from": "bad"},
        {"to": "2026-02-01T00:00:00Z", "from": "2026-02-09T00:00:00Z"},
    ],
)
def test_list_bad_parameters_are_400(api, events, params):
    response = api.get("/api/v1/events", params)
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM


@time_machine.travel(NOW, tick=False)
def test_list_v2_cursor_pages_and_filters(api, events):
    first = api.get("/api/v2/events", {"limit": "2"}).json()
    assert [e["event"]["id"] for e in first["items"]] == ["ok", "nan"]
    second = api.get("/api/v2/events", {"limit": "2", "cursor": first["nextCursor"]}).json()
    assert [e["event"]["id"] for e in second["items"]] == ["big", "orphan"]
    third = api.get("/api/v2/events", {"limit": "2", "cursor": second["nextCursor"]}).json()
    assert [e["event"]["id"] for e in third["items"]] == ["old"]
    assert "nextCursor" not in third
    filtered = api.get(
        "/api/v2/events",
        {
            "filter": json.dumps(
                {"subject": {"$like": "acme%"}, "type": {"$eq": "prompt"}, "time": {"$gte": "2026-02-10T00:00:00Z"}}
            )
        },
    ).json()
    assert [e["event"]["id"] for e in filtered["items"]] == ["ok", "nan"]


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    "params",
    [
        {"filter": "{bad"},
        {"filter": '{"colour": {"$eq": "x"}}'},
        {"filter": '{"id": {"$foo": "x"}}'},
        {"cursor": "!!!"},
        {"filter": '{"time": {"$gte": "never"}}'},
    ],
)
def test_list_v2_bad_parameters_are_400(api, events, params):
    response = api.get("/api/v2/events", params)
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM


@time_machine.travel(NOW, tick=False)
def test_list_with_client_id_reports_progress(api, events):
    assert api.get("/api/v1/events", {"clientId": "events-1"}).status_code == 200
    body = api.get("/api/v1/info/progress/events-1").json()
    assert (body["total"], body["success"], body["failed"]) == (1, 1, 0)
