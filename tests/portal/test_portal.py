import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from openmeter import Client
from rest_framework.test import APIClient

from openmeter_site.core.models import hash_secret
from portal.models import PortalToken
from tests.factories import MeterFactory, ingest

PROBLEM = "application/problem+json"
T0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def portal_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def create_token(api, **body) -> dict:
    response = api.post("/api/v1/portal/tokens", {"subject": "customer-a", **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def usage(db):
    """Two meters; subjects A and B both used tokens on two models."""
    tokens = MeterFactory(slug="tokens_total", group_by={"model": "$.model"})
    MeterFactory(slug="requests_total", aggregation="COUNT", value_property=None, group_by={})
    ingest([
        {"subject": "customer-a", "time": T0, "data": {"tokens": 10, "model": "gpt"}},
        {"subject": "customer-a", "time": T0 + dt.timedelta(hours=1), "data": {"tokens": 2.5, "model": "gpt"}},
        {"subject": "customer-a", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 7, "model": "claude"}},
        {"subject": "customer-b", "time": T0, "data": {"tokens": 1000, "model": "gpt"}},
    ])
    return tokens


@pytest.mark.django_db
def test_create_returns_the_token_once_and_stores_only_its_hash(api):
    with time_machine.travel(T0, tick=False):
        body = create_token(api, allowedMeterSlugs=["tokens_total"])
    assert body["token"].startswith("om_portal_")
    assert body["subject"] == "customer-a"
    assert body["allowedMeterSlugs"] == ["tokens_total"]
    assert body["expiresAt"] == "2026-05-01T01:00:00Z"  # default lifetime: 1 hour
    assert body["expired"] is False
    row = PortalToken.objects.get(pk=body["id"])
    assert row.token_hash == hash_secret(body["token"])
    assert body["token"] not in (row.token_hash, row.prefix)
    listed = api.get("/api/v1/portal/tokens").json()
    assert [t["id"] for t in listed] == [body["id"]]
    assert "token" not in listed[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [{"subject": ""}, {"subject": "a", "expiresAt": "2000-01-01T00:00:00Z"}, {"subject": "a", "expiresAt": "soon"},
     {"subject": "a", "allowedMeterSlugs": ["Not A Slug"]}, {}],
)
def test_create_rejects_bad_input(api, body):
    response = api.post("/api/v1/portal/tokens", body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert PortalToken.objects.count() == 0


@pytest.mark.django_db
def test_list_limit_and_invalidate(api):
    a1, a2, b = create_token(api), create_token(api), create_token(api, subject="customer-b")
    assert len(api.get("/api/v1/portal/tokens", {"limit": 2}).json()) == 2
    assert api.get("/api/v1/portal/tokens", {"limit": 101}).status_code == 400
    # by id
    assert api.post("/api/v1/portal/tokens/invalidate", {"id": b["id"]}, format="json").status_code == 204
    # by subject
    assert api.post("/api/v1/portal/tokens/invalidate", {"subject": "customer-a"}, format="json").status_code == 204
    assert api.get("/api/v1/portal/tokens").json() == []
    assert PortalToken.objects.filter(invalidated_at__isnull=False).count() == 3
    assert {a1["id"], a2["id"]} <= set(PortalToken.objects.values_list("id", flat=True))
    response = api.post("/api/v1/portal/tokens/invalidate", {}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert api.post("/api/v1/portal/tokens/invalidate", {"id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"},
                    format="json").status_code == 404


@pytest.mark.django_db
def test_portal_query_returns_only_the_token_subject(api, usage):
    token = create_token(api)["token"]
    response = portal_client(token).get("/api/v1/portal/meters/tokens_total/query")
    assert response.status_code == 200, response.content
    [row] = response.json()["data"]
    assert row["subject"] == "customer-a"
    assert Decimal(str(row["value"])) == Decimal("19.5")  # 10 + 2.5 + 7; customer-b's 1000 is not visible


@pytest.mark.django_db
def test_portal_query_windows_group_by_and_filters(api, usage):
    client = portal_client(create_token(api)["token"])
    response = client.get("/api/v1/portal/meters/tokens_total/query", {
        "from": "2026-05-01T00:00:00Z", "to": "2026-05-03T00:00:00Z", "windowSize": "DAY", "groupBy": "model",
    })
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["from"], body["to"], body["windowSize"]) == ("2026-05-01T00:00:00Z", "2026-05-03T00:00:00Z", "DAY")
    rows = [(r["windowStart"], r["groupBy"]["model"], Decimal(str(r["value"]))) for r in body["data"]]
    assert sorted(rows) == [
        ("2026-05-01T00:00:00Z", "gpt", Decimal("12.5")),  # 10 + 2.5
        ("2026-05-02T00:00:00Z", "claude", Decimal("7")),
    ]
    filtered = client.get("/api/v1/portal/meters/tokens_total/query", {"filterGroupBy[model]": "claude"}).json()
    assert [Decimal(str(r["value"])) for r in filtered["data"]] == [Decimal("7")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [{"subject": "customer-b"}, {"filterCustomerId": "x"}, {"groupBy": "nope"}, {"filterGroupBy[nope]": "x"},
     {"windowSize": "WEEK"}, {"from": "2026-05-02T00:00:00Z", "to": "2026-05-01T00:00:00Z"},
     {"windowTimeZone": "Mars/Olympus"}],
)
def test_portal_query_rejects_bad_or_foreign_parameters(api, usage, params):
    response = portal_client(create_token(api)["token"]).get("/api/v1/portal/meters/tokens_total/query", params)
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM


@pytest.mark.django_db
def test_portal_query_csv_and_advanced_filters_share_the_meter_query(api, usage):
    client = portal_client(create_token(api)["token"])
    response = client.get("/api/v1/portal/meters/tokens_total/query", {"groupBy": "model"}, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0] == "window_start,window_end,subject,subject_display_name,model,value"
    assert sorted(line.rsplit(",", 2)[1:] for line in lines[1:]) == [["claude", "7"], ["gpt", "12.5"]]
    assert "customer-b" not in response.content.decode()
    advanced = client.get("/api/v1/portal/meters/tokens_total/query",
                          {"advancedMeterGroupByFilters": '{"model": {"$eq": "gpt"}}'}).json()
    assert [(r["subject"], Decimal(str(r["value"]))) for r in advanced["data"]] == [("customer-a", Decimal("12.5"))]


@pytest.mark.django_db
def test_portal_token_is_limited_to_its_meters(api, usage):
    client = portal_client(create_token(api, allowedMeterSlugs=["tokens_total"])["token"])
    assert client.get("/api/v1/portal/meters/tokens_total/query").status_code == 200
    response = client.get("/api/v1/portal/meters/requests_total/query")
    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM
    # a token without a meter list reads every meter, and an unknown meter is 404
    client = portal_client(create_token(api)["token"])
    assert client.get("/api/v1/portal/meters/requests_total/query").status_code == 200
    assert client.get("/api/v1/portal/meters/nothing_here/query").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/portal/tokens"), ("post", "/api/v1/portal/tokens"), ("get", "/api/v1/notification/channels"),
     ("get", "/api/v1/info/currencies"), ("post", "/api/v1/portal/tokens/invalidate")],
)
def test_portal_token_is_refused_everywhere_else(api, method, path):
    client = portal_client(create_token(api)["token"])
    response = getattr(client, method)(path, {"subject": "customer-a"} if method == "post" else None, format="json")
    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM


@pytest.mark.django_db
def test_portal_query_refuses_api_keys_and_missing_or_unknown_tokens(api, api_key, usage):
    url = "/api/v1/portal/meters/tokens_total/query"
    for client in (api, APIClient(), portal_client("om_portal_not-a-real-token")):
        response = client.get(url)
        assert response.status_code == 401
        assert response["Content-Type"] == PROBLEM


@pytest.mark.django_db
def test_portal_token_stops_working_when_invalidated_or_expired(api, usage):
    url = "/api/v1/portal/meters/tokens_total/query"
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        soon = create_token(api, expiresAt="2026-05-04T00:10:00Z")
        other = create_token(api)
        assert portal_client(soon["token"]).get(url).status_code == 200
        api.post("/api/v1/portal/tokens/invalidate", {"id": other["id"]}, format="json")
        response = portal_client(other["token"]).get(url)
        assert response.status_code == 401
        assert "invalidated" in response.json()["detail"]
    with time_machine.travel(T0 + dt.timedelta(days=3, minutes=10), tick=False):
        response = portal_client(soon["token"]).get(url)
        assert response.status_code == 401
        assert "expired" in response.json()["detail"]
        assert api.get("/api/v1/portal/tokens").json()[0]["expired"] is True


@pytest.mark.django_db(transaction=True)
def test_python_client_portal_flow(live_server_url, api_key):
    MeterFactory(slug="tokens_total", group_by={"model": "$.model"})
    MeterFactory(slug="other_meter")
    ingest([
        {"subject": "customer-a", "time": T0, "data": {"tokens": 4, "model": "gpt"}},
        {"subject": "customer-b", "time": T0, "data": {"tokens": 40, "model": "gpt"}},
    ])
    admin = Client(endpoint=live_server_url, token=api_key)
    created = admin.portal.portal_tokens.create({"subject": "customer-a", "allowedMeterSlugs": ["tokens_total"]})
    assert created.token.startswith("om_portal_")
    assert [t.id for t in admin.portal.portal_tokens.list(limit=10)] == [created.id]

    portal = Client(endpoint=live_server_url, token=created.token)
    result = portal.portal.portal_meters.query_json("tokens_total", group_by=["model"], filter_group_by={"model": "gpt"})
    assert [(r.subject, r.value, r.group_by) for r in result.data] == [("customer-a", 4, {"model": "gpt"})]
    from corehttp.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as forbidden:
        portal.portal.portal_meters.query_json("other_meter")
    assert forbidden.value.status_code == 403
    with pytest.raises(HttpResponseError) as not_api:
        portal.portal.portal_tokens.list()
    assert not_api.value.status_code == 401

    admin.portal.portal_tokens.invalidate(subject="customer-a")
    with pytest.raises(HttpResponseError) as invalidated:
        portal.portal.portal_meters.query_json("tokens_total")
    assert invalidated.value.status_code == 401
