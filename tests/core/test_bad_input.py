"""Inputs a schemathesis run against OpenMeter's spec once answered with a 500; each is now a clear answer."""

import datetime as dt

import pytest

from billing.models import InvoiceLine
from metering.models import Event, Subject
from tests.billing.helpers import customer

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def problem(response, status=400):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    return response.json()["detail"]


def test_a_page_past_any_table_is_empty_and_a_page_beyond_safe_integers_is_a_400(api):
    # the largest page number at 588 rows per page starts past 2**62 rows: an empty page, not a bigint overflow
    body = api.get("/api/v1/notification/channels?page=9007199254740991&pageSize=588").json()
    assert body == {"totalCount": 0, "page": 9007199254740991, "pageSize": 588, "items": []}
    assert api.get("/api/v1/entitlements?offset=9007199254740991&limit=441").json() == []
    assert "page: must be between 1 and 9007199254740991" in problem(
        api.get("/api/v1/billing/profiles?page=39285807731417404011446272")
    )
    assert "offset" in problem(api.get("/api/v2/grants?offset=15948994951813924864&limit=10"))


def test_a_nul_character_in_the_query_or_the_body_is_a_400(api):
    assert "NUL" in problem(api.get("/api/v1/features?meterSlug=a%00b"))
    assert "NUL" in problem(api.get("/api/v1/plans?key=x%00"))
    response = api.post("/api/v1/subjects", [{"key": "nul-subject", "displayName": "a\u0000b"}], format="json")
    assert "NUL" in problem(response)
    assert not Subject.objects.filter(key="nul-subject").exists()


def test_free_form_json_keeps_its_numbers(api):
    metadata = {"ratio": 1.5, "count": 2, "nested": {"x": -0.25}, "big": 2**64, "huge": 1e300}
    response = api.post("/api/v1/subjects", [{"key": "s-meta", "metadata": metadata}], format="json")
    assert response.status_code == 200, response.content
    # integers past 64 bits come back as doubles: 2**64 = 18446744073709551616.0
    expected = {"ratio": 1.5, "count": 2, "nested": {"x": -0.25}, "big": 18446744073709551616.0, "huge": 1e300}
    assert response.json()[0]["metadata"] == expected
    assert api.get("/api/v1/subjects/s-meta").json()["metadata"] == expected
    stored = Subject.objects.get(key="s-meta").metadata
    assert {k: stored[k] for k in ("ratio", "count", "nested")} == {"ratio": 1.5, "count": 2, "nested": {"x": -0.25}}


def event(event_id, **extra):
    return {"id": event_id, "source": "t", "specversion": "1.0", "type": "t", "subject": "s", **extra}


def test_an_event_time_with_a_large_offset_is_stored_in_utc(api):
    body = [event("far-offset", time="2026-01-01T23:00:00+22:46")]
    assert api.post("/api/v1/events", body, format="json").status_code == 204
    # 23:00 at +22:46 is 00:14 UTC the same day
    assert Event.objects.get(id="far-offset").time == dt.datetime(2026, 1, 1, 0, 14, tzinfo=dt.UTC)


def test_an_event_time_that_overflows_in_utc_is_a_400_naming_the_event(api):
    body = [event("ok"), event("late", time="9999-12-31T23:00:00-05:00")]
    assert "[1].time" in problem(api.post("/api/v1/events", body, format="json"))
    assert not Event.objects.filter(id__in=["ok", "late"]).exists()


def test_a_subscription_edit_whose_op_is_not_a_string_is_a_400(api):
    body = {"customizations": [{"op": {}, "phaseKey": "main", "extendBy": "P1D"}]}
    assert "op" in problem(api.patch("/api/v1/subscriptions/01G65Z755AFWAKHE12NY0CQ9FH", body, format="json"))


def test_a_pending_line_with_a_feature_key_longer_than_a_key_is_a_400(api):
    cust = customer()
    line = {
        "name": "Fee", "featureKey": "k" * 65, "period": {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
        "invoiceAt": "2026-02-01T00:00:00Z", "price": {"type": "flat", "amount": "10", "paymentTerm": "in_arrears"},
    }
    response = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                        {"currency": "USD", "lines": [line]}, format="json")
    assert "featureKey" in problem(response)
    assert not InvoiceLine.objects.exists()


def post_raw(api, path, raw: bytes):
    return api.generic("POST", path, raw, content_type="application/json")


@pytest.mark.parametrize("levels", [65, 900, 5000])
def test_a_body_nested_too_deeply_is_a_400_at_any_depth(api, levels):
    # 900 levels passed the parser and overflowed Python's stack further on; 5000 overflowed the parser: 500s
    raw = b'[{"key": "deep", "metadata": {"a": ' + b"[" * levels + b"]" * levels + b"}}]"
    assert "nested more than 64 levels deep" in problem(post_raw(api, "/api/v1/subjects", raw))
    assert not Subject.objects.filter(key="deep").exists()


def test_a_body_nested_64_levels_deep_is_accepted(api):
    raw = b'[{"key": "deep", "metadata": {"a": ' + b"[" * 61 + b"]" * 61 + b"}}]"  # list, object, object, 61 lists
    assert post_raw(api, "/api/v1/subjects", raw).status_code == 200
    expected: list = []
    for _ in range(60):
        expected = [expected]
    assert Subject.objects.get(key="deep").metadata == {"a": expected}


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json_numbers(api, constant):
    # Python's parser takes them; PostgreSQL's jsonb refused them with a 500, and a metadata string got "nan"
    raw = b'[{"key": "nan", "metadata": {"a": ' + constant + b"}}]"
    assert f"{constant.decode().lstrip('-')} is not a JSON number" in problem(post_raw(api, "/api/v1/subjects", raw))
    raw = b'{"key": "nan", "name": "N", "metadata": {"a": ' + constant + b"}}"
    assert "is not a JSON number" in problem(post_raw(api, "/api/v1/customers", raw))
    assert not Subject.objects.filter(key="nan").exists()


def test_an_integer_too_large_for_a_double_is_a_400_in_free_form_json(api):
    # an integer of 400 digits overflowed the conversion to a double: a 500
    raw = b'[{"key": "big", "metadata": {"a": 1' + b"0" * 400 + b"}}]"
    assert "number out of range" in problem(post_raw(api, "/api/v1/subjects", raw))
    assert not Subject.objects.filter(key="big").exists()
