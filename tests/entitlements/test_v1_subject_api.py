"""V1 (subject-based, deprecated) entitlements over HTTP: the subject names the customer that owns it.

The official Python client cannot reach these operations (sdk-wire.md), so they are tested over HTTP.
"""

import datetime as dt

import pytest
import time_machine

from entitlements.models import Entitlement, Grant
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
BASE = "/api/v1/subjects/acme-api/entitlements"


def z(when):
    return when.isoformat().replace("+00:00", "Z")


@pytest.fixture
def customer(db):
    FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    return CustomerFactory(key="acme", subjects=["acme-api"])


def create(api, **extra):
    body = {"type": "metered", "featureKey": "tokens", "usagePeriod": {"interval": "DAY", "anchor": z(T0)}, **extra}
    return api.post(BASE, body, format="json")


def test_v1_flow_create_grant_value_history_reset_delete(api, customer):
    with time_machine.travel(T0, tick=False):
        created = create(api)
        assert created.status_code == 201, created.json()
        ent = created.json()
        assert ent["subjectKey"] == "acme-api" and "customerId" not in ent
        assert ent["usagePeriod"]["intervalISO"] == "P1D"
        # V1 grant: expiration required, maxRolloverAmount defaults to 0
        no_expiry = api.post(f"{BASE}/tokens/grants", {"amount": 10, "effectiveAt": z(T0)}, format="json")
        assert no_expiry.status_code == 400
        g = api.post(f"{BASE}/tokens/grants",
                     {"amount": 10, "effectiveAt": z(T0), "expiration": {"duration": "MONTH", "count": 1}},
                     format="json")
        assert g.status_code == 201
        assert g.json()["maxRolloverAmount"] == 0
        assert g.json()["expiresAt"] == "2026-04-01T00:00:00Z"
    ingest([{"subject": "acme-api", "time": T0 + dt.timedelta(hours=2), "data": {"tokens": 4}}])
    with time_machine.travel(T0 + dt.timedelta(hours=3), tick=False):
        value = api.get(f"{BASE}/tokens/value").json()
        assert value == {"hasAccess": True, "balance": 6, "usage": 4, "overage": 0, "totalAvailableGrantAmount": 10}
        by_id = api.get(f"{BASE}/{ent['id']}/value").json()
        assert by_id == value
        grants = api.get(f"{BASE}/tokens/grants").json()
        assert isinstance(grants, list) and grants[0]["amount"] == 10
        history = api.get(f"{BASE}/{ent['id']}/history", {"windowSize": "HOUR"}).json()
        assert history["windowedHistory"] == [
            {"period": {"from": "2026-03-01T02:00:00Z", "to": "2026-03-01T03:00:00Z"}, "usage": 4, "balanceAtStart": 10}
        ]
        assert api.get(f"/api/v1/entitlements/{ent['id']}").json()["subjectKey"] == "acme-api"
        assert [e["id"] for e in api.get(BASE).json()] == [ent["id"]]
        assert api.get(f"{BASE}/{ent['id']}").json()["id"] == ent["id"]
        assert api.post(f"{BASE}/{ent['id']}/reset", {}, format="json").status_code == 204
        # reset: maxRolloverAmount 0 → nothing rolls over
        assert api.get(f"{BASE}/tokens/value").json()["balance"] == 0
        assert api.delete(f"{BASE}/{ent['id']}").status_code == 204
    assert Entitlement.objects.get(pk=ent["id"]).deleted_at is not None


def test_v1_override_returns_201(api, customer):
    with time_machine.travel(T0, tick=False):
        old = create(api).json()
        response = api.put(f"{BASE}/tokens/override", {"type": "boolean", "featureKey": "tokens"}, format="json")
    assert response.status_code == 201
    assert response.json()["type"] == "boolean"
    assert Entitlement.objects.get(pk=old["id"]).deleted_at is not None


def test_v1_and_v2_are_views_of_the_same_entitlement(api, customer):
    with time_machine.travel(T0, tick=False):
        v1 = create(api).json()
        v2 = api.get("/api/v2/customers/acme/entitlements/tokens").json()
    assert v1["id"] == v2["id"]
    assert v2["customerId"] == customer.pk
    # the customer key is a subject too
    assert api.get("/api/v1/subjects/acme/entitlements").json()[0]["id"] == v1["id"]


def test_unknown_subject_is_404_and_writes_nothing(api, customer):
    response = api.post("/api/v1/subjects/stranger/entitlements",
                        {"type": "boolean", "featureKey": "tokens"}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert "stranger" in response.json()["detail"]
    assert Entitlement.objects.count() == 0


def test_second_entitlement_for_the_feature_is_409(api, customer):
    assert create(api).status_code == 201
    response = create(api)
    assert response.status_code == 409
    assert Entitlement.objects.count() == 1
    assert Grant.objects.count() == 0


def test_v1_grants_list_all_filters_by_subject_and_feature(api, customer):
    with time_machine.travel(T0, tick=False):
        create(api)
        api.post(f"{BASE}/tokens/grants",
                 {"amount": 5, "effectiveAt": z(T0), "expiration": {"duration": "DAY", "count": 3}}, format="json")
        assert len(api.get("/api/v1/grants", {"subject": "acme-api"}).json()) == 1
        assert len(api.get("/api/v1/grants", {"subject": "nobody"}).json()) == 0
        assert len(api.get("/api/v1/grants", {"feature": "tokens"}).json()) == 1
