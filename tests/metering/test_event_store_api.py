"""The API answers the same on both event stores: ingest, meter query, event list v2 and an entitlement's value
(billing, entitlements and customers stay in PostgreSQL; only the events move)."""

import datetime as dt

import orjson
import pytest
import time_machine

from tests.factories import CustomerFactory, FeatureFactory, MeterFactory
from tests.metering.conftest import clickhouse_reset

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.fixture(params=["postgres", "clickhouse"])
def backend(request, settings):
    settings.OPENMETER_EVENTS_BACKEND = request.param
    if request.param == "clickhouse":
        settings.CLICKHOUSE_URL = "chdb://memory"
        clickhouse_reset()
    return request.param


def post_events(api, events):
    body = [{"specversion": "1.0", "source": "api", "type": "request", **e} for e in events]
    response = api.post("/api/v1/events", orjson.dumps(body), content_type="application/cloudevents-batch+json")
    assert response.status_code == 204, response.content


def test_ingest_query_list_and_entitlement_value(api, backend):
    meter = MeterFactory(slug="tokens", group_by={"model": "$.model"})
    feature = FeatureFactory(key="gpt_tokens", meter=meter)
    customer = CustomerFactory(key="acme", subjects=["acme-api"])
    events = [
        {"id": "a1", "subject": "acme", "time": "2026-03-02T10:00:00Z", "data": {"tokens": 30, "model": "gpt-4"}},
        {"id": "a2", "subject": "acme-api", "time": "2026-03-03T10:00:00Z", "data": {"tokens": 40, "model": "gpt-3"}},
        {"id": "a3", "subject": "other", "time": "2026-03-03T11:00:00Z", "data": {"tokens": 500, "model": "gpt-4"}},
    ]
    post_events(api, events)
    post_events(api, events[:1])  # a retry: stored once

    query = api.get("/api/v1/meters/tokens/query", {"from": "2026-03-01T00:00:00Z", "to": "2026-03-05T00:00:00Z",
                                                    "windowSize": "DAY", "filterCustomerId": customer.pk})
    assert query.status_code == 200, query.json()
    assert [(r["windowStart"], r["value"], r["customerId"]) for r in query.json()["data"]] == [
        ("2026-03-02T00:00:00Z", 30, customer.pk), ("2026-03-03T00:00:00Z", 40, customer.pk)]
    by_model = api.get("/api/v1/meters/tokens/query", {"groupBy": "model"}).json()["data"]
    assert sorted((r["groupBy"]["model"], r["value"]) for r in by_model) == [("gpt-3", 40), ("gpt-4", 530)]

    first = api.get("/api/v2/events", {"limit": 2}).json()
    assert [i["event"]["id"] for i in first["items"]] == ["a3", "a2"]
    rest = api.get("/api/v2/events", {"limit": 2, "cursor": first["nextCursor"]}).json()
    assert [i["event"]["id"] for i in rest["items"]] == ["a1"] and "nextCursor" not in rest
    assert rest["items"][0]["customerId"] == customer.pk

    with time_machine.travel(T0, tick=False):
        created = api.post(f"/api/v2/customers/{customer.key}/entitlements", {
            "type": "metered", "featureKey": feature.key, "measureUsageFrom": "CURRENT_PERIOD_START",
            "usagePeriod": {"interval": "MONTH", "anchor": "2026-03-01T00:00:00Z"}}, format="json")
        assert created.status_code == 201, created.json()
        granted = api.post(f"/api/v2/customers/{customer.key}/entitlements/gpt_tokens/grants",
                           {"amount": 100, "effectiveAt": "2026-03-01T00:00:00Z"}, format="json")
        assert granted.status_code == 201, granted.json()
    with time_machine.travel(T0 + dt.timedelta(days=5), tick=False):
        value = api.get(f"/api/v2/customers/{customer.key}/entitlements/gpt_tokens/value").json()
    assert (value["usage"], value["balance"], value["hasAccess"]) == (70, 30, True)
