import datetime as dt
import json

import pytest
from rest_framework.exceptions import ValidationError

from metering.api.serializers import MeterQuerySerializer, validate_meter_query
from metering.postgres.fold import fold_all
from tests.factories import CustomerFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
RANGE = {"from": "2026-01-05T00:00:00Z", "to": "2026-01-07T00:00:00Z"}


@pytest.fixture
def meter():
    m = MeterFactory(slug="tokens", aggregation="SUM", group_by={"model": "$.model", "type": "$.type"})
    ingest(
        [
            {"subject": "s1", "time": T0 + dt.timedelta(hours=1), "data": {"tokens": 10, "model": "a", "type": "in"}},
            {"subject": "s1", "time": T0 + dt.timedelta(hours=2), "data": {"tokens": 5, "model": "b", "type": "in"}},
            {"subject": "s2", "time": T0 + dt.timedelta(hours=25), "data": {"tokens": "1.25", "model": "a"}},
        ]
    )
    fold_all()
    ingest([{"subject": "s3", "time": T0 + dt.timedelta(hours=3), "data": {"tokens": 100, "model": "a"}}])  # pending
    return m


def get(api, params, path="/api/v1/meters/tokens/query", **headers):
    return api.get(path, params, **headers)


def test_query_windows_and_groups(api, meter):
    response = get(api, {**RANGE, "windowSize": "DAY", "groupBy": ["model"]})
    assert response.status_code == 200
    body = response.json()
    assert body["from"] == "2026-01-05T00:00:00Z" and body["to"] == "2026-01-07T00:00:00Z"
    assert body["windowSize"] == "DAY"
    assert body["data"] == [
        # day 1: a = 10 + 100, b = 5; day 2: a = 1.25
        {
            "value": 110,
            "windowStart": "2026-01-05T00:00:00Z",
            "windowEnd": "2026-01-06T00:00:00Z",
            "subject": None,
            "groupBy": {"model": "a"},
        },
        {
            "value": 5,
            "windowStart": "2026-01-05T00:00:00Z",
            "windowEnd": "2026-01-06T00:00:00Z",
            "subject": None,
            "groupBy": {"model": "b"},
        },
        {
            "value": 1.25,
            "windowStart": "2026-01-06T00:00:00Z",
            "windowEnd": "2026-01-07T00:00:00Z",
            "subject": None,
            "groupBy": {"model": "a"},
        },
    ]


def test_values_are_exact_json_numbers(api, meter):
    ingest([{"subject": "s1", "time": T0, "data": {"tokens": t}} for t in ("0.1", "0.2")])
    response = get(api, {**RANGE, "subject": ["s1"]})
    assert b'"value":15.3' in response.content  # 10 + 5 + 0.1 + 0.2, no float noise


def test_subject_filter_groups_by_subject(api, meter):
    data = get(api, {**RANGE, "subject": ["s1", "s3"]}).json()["data"]
    assert [(r["subject"], r["value"]) for r in data] == [("s1", 15), ("s3", 100)]


def test_filter_customer_id_groups_by_customer(api, meter):
    acme = CustomerFactory(key="acme", subjects=["s1"])
    beta = CustomerFactory(key="s2")  # attributed through its key
    data = get(api, {**RANGE, "filterCustomerId": [acme.pk, beta.pk]}).json()["data"]
    assert sorted((r["customerId"], r["value"]) for r in data) == sorted([(acme.pk, 15), (beta.pk, 1.25)])


def test_filter_group_by_deep_object_and_advanced_filters(api, meter):
    data = get(api, {**RANGE, "filterGroupBy[model]": "b"}).json()["data"]
    assert [r["value"] for r in data] == [5]
    advanced = json.dumps({"model": {"$in": ["a"]}, "type": {"$eq": "in"}})
    data = get(api, {**RANGE, "advancedMeterGroupByFilters": advanced}).json()["data"]
    assert [r["value"] for r in data] == [10]
    # the Python client sends the dict's repr
    data = get(api, {**RANGE, "filterGroupBy": "{'model': 'b'}"}).json()["data"]
    assert [r["value"] for r in data] == [5]


def test_post_query_takes_the_same_parameters_as_json(api, meter):
    response = api.post(
        "/api/v1/meters/tokens/query",
        {
            **RANGE,
            "windowSize": "HOUR",
            "windowTimeZone": "Asia/Kolkata",
            "filterGroupBy": {"model": ["a"]},
            "subject": ["s1"],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    # 01:00Z lies in the Kolkata hour window [00:30Z, 01:30Z)
    assert [(r["windowStart"], r["value"]) for r in response.json()["data"]] == [("2026-01-05T00:30:00Z", 10)]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"from": "2026-01-07T00:00:00Z", "to": "2026-01-05T00:00:00Z"}, "from"),
        ({"from": "2026-01-05T00:00:00Z", "to": "2026-01-05T00:00:00Z"}, "equal"),
        ({"from": "yesterday"}, "from"),
        ({"windowSize": "WEEK"}, "windowSize"),
        ({"windowTimeZone": "Mars/Olympus"}, "windowTimeZone"),
        ({"groupBy": ["nope"]}, "invalid group by: nope"),
        ({"groupBy": ["customer_id"]}, "filterCustomerId"),
        ({"filterGroupBy[nope]": "x"}, "nope"),
        ({"filterGroupBy[model]": "a", "advancedMeterGroupByFilters": '{"model": {"$eq": "a"}}'}, "together"),
        ({"advancedMeterGroupByFilters": "{not json"}, "advancedMeterGroupByFilters"),
        ({"advancedMeterGroupByFilters": '{"model": {"$regex": "a"}}'}, "$regex"),
        ({"filterCustomerId": ["01G65Z755AFWAKHE12NY0CQ9FH"]}, "customer not found"),
    ],
)
def test_bad_query_parameters_are_400_problems(api, meter, params, fragment):
    response = get(api, params)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    assert fragment in response.json()["detail"]


def test_csv_output(api, meter):
    response = get(api, {**RANGE, "windowSize": "DAY", "groupBy": ["model"], "subject": ["s1"]}, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.content.decode().splitlines() == [
        "window_start,window_end,subject,subject_display_name,model,value",
        "2026-01-05T00:00:00Z,2026-01-06T00:00:00Z,s1,,a,10",
        "2026-01-05T00:00:00Z,2026-01-06T00:00:00Z,s1,,b,5",
    ]


def test_csv_without_grouping(api, meter):
    response = get(api, RANGE, HTTP_ACCEPT="text/csv")
    assert response.content.decode().splitlines() == [
        "window_start,window_end,value",
        "2026-01-05T00:00:00Z,2026-01-07T00:00:00Z,116.25",  # 10 + 5 + 1.25 + 100
    ]


def test_query_with_client_id_reports_progress(api, meter):
    assert get(api, {**RANGE, "clientId": "my-query-1"}).status_code == 200
    response = api.get("/api/v1/info/progress/my-query-1")
    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["success"], body["failed"]) == (1, 1, 0)
    assert body["updatedAt"].endswith("Z")


def test_unknown_progress_is_404(api):
    response = api.get("/api/v1/info/progress/nothing-here")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_group_by_values_and_meter_subjects(api, meter):
    response = api.get("/api/v1/meters/tokens/group-by/model/values", RANGE)
    assert response.status_code == 200
    assert response.json() == ["a", "b"]
    assert api.get("/api/v1/meters/tokens/group-by/nope/values", RANGE).status_code == 400
    assert api.get("/api/v1/meters/tokens/subjects", RANGE).json() == ["s1", "s2", "s3"]


def test_post_query_without_body_answers_csv(api, meter):
    # the Python client's query_csv_post sends no body
    response = api.generic("POST", "/api/v1/meters/tokens/query", "", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    lines = response.content.decode().splitlines()
    assert lines[0] == "window_start,window_end,value"
    assert lines[1].endswith(",116.25")  # every event: 10 + 5 + 1.25 + 100


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"from": "2026-01-05T00:00:00Z", "to": "2026-01-07T01:30:00+01:00", "windowSize": "DAY"},
        {"from": None, "windowSize": None, "windowTimeZone": "Europe/Berlin", "clientId": "c" * 36},
        {"subject": ["s1", "s2"], "groupBy": ["model", "subject"], "filterCustomerId": []},
        {"filterGroupBy": {"model": ["a", "b"]}, "advancedMeterGroupByFilters": {"model": {"$eq": "a"}}},
        {"unknown": "ignored", "subject": ["s1"]},
        # not plain: the serializer decides (and trims, converts or refuses)
        {"subject": [" s1 "], "clientId": 7, "windowTimeZone": " UTC"},
        {"from": "yesterday", "windowSize": "WEEK", "clientId": "c" * 37, "subject": "s1"},
        {"groupBy": ["m"] * 101, "filterGroupBy": {"model": "a"}, "advancedMeterGroupByFilters": []},
    ],
)
def test_plain_query_requests_validate_as_the_serializer_does(raw):
    # the fast path must give the serializer's validated data, or the serializer's errors
    serializer = MeterQuerySerializer(data=raw)
    if serializer.is_valid():
        assert validate_meter_query(raw) == dict(serializer.validated_data)
    else:
        with pytest.raises(ValidationError) as raised:
            validate_meter_query(raw)
        assert raised.value.detail == serializer.errors
