import datetime as dt
import json

import pytest
import time_machine
from django.test import override_settings

from metering.models import Event, PendingEvent

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def event(**overrides):
    body = {
        "id": "e1",
        "source": "svc",
        "specversion": "1.0",
        "type": "request",
        "subject": "customer-1",
        "time": "2026-01-01T00:00:00Z",
        "data": {"tokens": 10, "model": "gpt-4"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def post(api, body, content_type="application/cloudevents-batch+json"):
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    return api.generic("POST", "/api/v1/events", raw, content_type=content_type)


def assert_problem(response, status, *fragments):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    for fragment in fragments:
        assert fragment in body["detail"], body["detail"]
    return body


def test_batch_is_stored_and_queued_with_204_empty_body(api):
    response = post(api, [event(id="a"), event(id="b", subject="customer-2")])
    assert response.status_code == 204
    assert response.content == b""
    assert sorted(Event.objects.values_list("id", "subject")) == [("a", "customer-1"), ("b", "customer-2")]
    assert PendingEvent.objects.count() == 2


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/cloudevents+json", event()),
        ("application/cloudevents+json; charset=utf-8", event()),
        ("application/json", event()),
        ("application/json", [event()]),
        ("Application/JSON;charset=UTF-8", [event()]),
        ("application/cloudevents-batch+json; charset=utf-8", [event()]),
    ],
)
def test_every_accepted_content_type(api, content_type, body):
    assert post(api, body, content_type).status_code == 204
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    ("content_type", "body", "fragment"),
    [
        ("text/plain", [event()], "invalid content type"),
        ("application/cloudevents+json", [event()], "expected an event object"),
        ("application/cloudevents-batch+json", event(), "expected an array"),
    ],
)
def test_wrong_content_type_or_shape_is_400(api, content_type, body, fragment):
    assert_problem(post(api, body, content_type), 400, fragment)
    assert Event.objects.count() == 0


def test_duplicates_on_source_and_id_are_dropped_silently(api):
    assert post(api, [event(id="a"), event(id="a")]).status_code == 204
    assert post(api, [event(id="a", data={"tokens": 99}), event(id="a", source="other")]).status_code == 204
    # (svc, a) stored once with its first data; (other, a) is a different event
    assert Event.objects.count() == 2
    assert Event.objects.get(source="svc").data == {"tokens": 10, "model": "gpt-4"}
    assert PendingEvent.objects.count() == 2


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"id": ...}, "[1].id"),
        ({"id": ""}, "[1].id"),
        ({"id": 5}, "[1].id"),
        ({"source": None}, "[1].source"),
        ({"specversion": ...}, "[1].specversion"),
        ({"type": ""}, "[1].type"),
        ({"subject": ...}, "[1].subject"),
        ({"subject": ["x"]}, "[1].subject"),
        ({"time": "yesterday"}, "[1].time"),
        ({"time": "2026-01-01T00:00:00"}, "[1].time"),  # no offset
        ({"time": "2026-02-30T00:00:00Z"}, "[1].time"),
        ({"time": 1700000000}, "[1].time"),
        ({"data": [1, 2]}, "[1].data"),
        ({"data": "text"}, "[1].data"),
        ({"datacontenttype": "text/plain"}, "[1].datacontenttype"),
    ],
)
def test_an_invalid_event_rejects_the_whole_batch_naming_index_and_field(api, bad, field):
    response = post(api, [event(id="ok"), event(**{"id": "bad", **bad})])
    body = assert_problem(response, 400, field)
    assert body["extensions"]["validationErrors"][0]["field"] == field
    assert Event.objects.count() == 0
    assert PendingEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "limit"), [("id", 512), ("source", 512), ("subject", 512), ("type", 256)]
)
def test_a_field_longer_than_its_column_is_a_400_naming_event_and_field_and_nothing_is_stored(api, field, limit):
    # the longest value is stored; one character more is refused (it was a 500 for the whole batch)
    longest = event(**{"id": "longest", field: "x" * limit})
    assert post(api, [longest]).status_code == 204
    too_long = event(**{"id": "too-long", field: "y" * (limit + 1)})
    body = assert_problem(post(api, [event(id="ok"), too_long]), 400, f"[1].{field}", f"at most {limit} characters")
    assert body["extensions"]["validationErrors"][0]["field"] == f"[1].{field}"
    assert Event.objects.count() == PendingEvent.objects.count() == 1


def test_event_that_is_not_an_object_is_400(api):
    assert_problem(post(api, [event(), 42]), 400, "[1]")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,", b'[{"id": "a"'])
def test_malformed_json_is_400(api, raw):
    assert_problem(post(api, raw), 400, "malformed JSON")
    assert Event.objects.count() == 0


def test_empty_batch_is_400(api):
    assert_problem(post(api, []), 400, "no events found")


def test_nul_character_is_400_not_500(api):
    assert_problem(post(api, [event(subject="a\u0000b")]), 400, "NUL")


@override_settings(OPENMETER_INGEST_MAX_EVENTS=3)
def test_more_events_than_allowed_is_413(api):
    assert_problem(post(api, [event(id=str(i)) for i in range(4)]), 413, "too many events")
    assert Event.objects.count() == 0


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_body_over_the_size_limit_is_413(api):
    response = post(api, [event(id=str(i)) for i in range(20)])
    assert_problem(response, 413)
    assert Event.objects.count() == 0


@time_machine.travel(dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC), tick=False)
def test_missing_or_null_time_defaults_to_now(api):
    assert post(api, [event(id="a", time=...), event(id="b", time=None)]).status_code == 204
    assert set(Event.objects.values_list("time", flat=True)) == {dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)}


def test_time_offsets_and_nanoseconds_are_accepted(api):
    body = [
        event(id="a", time="2026-01-01T01:30:00+01:30"),
        event(id="b", time="2026-01-01T00:00:00.123456789Z"),
        event(id="c", time="2026-01-01t00:00:00z"),
    ]
    assert post(api, body).status_code == 204
    times = dict(Event.objects.values_list("id", "time"))
    assert times["a"] == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert times["b"] == dt.datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC)
    assert times["c"] == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_numbers_in_data_are_stored_exactly(api):
    raw = (
        '[{"id":"a","source":"s","specversion":"1.0","type":"t","subject":"x",'
        '"data":{"big":123456789012345678901234567890,"small":0.1000000000000000000001}}]'
    )
    assert post(api, raw).status_code == 204
    with __import__("django").db.connection.cursor() as cur:
        cur.execute("SELECT data->>'big', data->>'small' FROM metering_event")
        assert cur.fetchone() == ("123456789012345678901234567890", "0.1000000000000000000001")


def test_null_data_is_stored_as_null(api):
    assert post(api, [event(id="a", data=None), event(id="b", data=...)]).status_code == 204
    assert list(Event.objects.values_list("data", flat=True)) == [None, None]


def test_ingest_requires_an_api_key(client):
    response = client.post("/api/v1/events", json.dumps([event()]), content_type="application/cloudevents-batch+json")
    assert response.status_code == 401
    assert Event.objects.count() == 0
