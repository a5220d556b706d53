"""Responses validated against OpenMeter's OpenAPI schemas (the vendored spec in tests/contract)."""

import datetime as dt

import pytest
import time_machine

from tests.contract.spec import assert_matches
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
V1_SCHEMAS = {"metered": "EntitlementMetered", "static": "EntitlementStatic", "boolean": "EntitlementBoolean"}


def test_entitlements_grants_values_and_history_match_the_spec(api):
    FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    FeatureFactory(key="sso", meter=None)
    FeatureFactory(key="limits", meter=None)
    CustomerFactory(key="acme", subjects=["acme_api"])  # the spec's subjectKey is key-shaped
    with time_machine.travel(T0, tick=False):
        metered = api.post("/api/v2/customers/acme/entitlements",
                           {"type": "metered", "featureKey": "tokens", "usagePeriod": {"interval": "MONTH"},
                            "issueAfterReset": 5, "metadata": {"a": "b"}}, format="json").json()
        boolean = api.post("/api/v2/customers/acme/entitlements", {"type": "boolean", "featureKey": "sso"},
                           format="json").json()
        static = api.post("/api/v2/customers/acme/entitlements",
                          {"type": "static", "featureKey": "limits", "config": '{"seats": 3}'}, format="json").json()
        grant = api.post("/api/v2/customers/acme/entitlements/tokens/grants",
                         {"amount": 100, "effectiveAt": "2026-03-01T00:00:00Z",
                          "expiration": {"duration": "MONTH", "count": 2}, "recurrence": {"interval": "WEEK"}},
                         format="json").json()
    ingest([{"subject": "acme_api", "time": T0 + dt.timedelta(hours=1), "data": {"tokens": 7}}])
    with time_machine.travel(T0 + dt.timedelta(days=2), tick=False):
        assert_matches(metered, "EntitlementMeteredV2")
        assert_matches(boolean, "EntitlementBooleanV2")
        assert_matches(static, "EntitlementStaticV2")
        assert_matches(grant, "EntitlementGrantV2")
        assert_matches(api.get("/api/v2/entitlements").json(), "EntitlementV2PaginatedResponse")
        assert_matches(api.get("/api/v2/customers/acme/entitlements").json(), "EntitlementV2PaginatedResponse")
        assert_matches(api.get("/api/v2/grants").json(), "GrantV2PaginatedResponse")
        assert_matches(api.get("/api/v2/customers/acme/entitlements/tokens/value").json(), "EntitlementValueV2")
        assert_matches(api.get("/api/v1/customers/acme/entitlements/limits/value").json(), "EntitlementValue")
        assert_matches(api.get("/api/v1/customers/acme/access").json(), "CustomerAccess")
        assert_matches(api.get("/api/v2/customers/acme/entitlements/tokens/history",
                                                         {"windowSize": "HOUR"}).json(), "WindowedBalanceHistory")
        for item in api.get("/api/v1/entitlements").json():
            assert_matches(item, V1_SCHEMAS[item["type"]])
        v1_grants = api.get("/api/v1/grants").json()
        # V1 requires `expiration`; never-expiring grants (V2, issueAfterReset) are rendered without it
        assert [g["id"] for g in v1_grants if "expiration" in g] == [grant["id"]]
        assert_matches(next(g for g in v1_grants if "expiration" in g), "EntitlementGrant")


def test_customers_and_features_match_the_spec(api):
    MeterFactory(slug="tokens")
    customer = api.post("/api/v1/customers", {"name": "A", "key": "a", "currency": "USD", "primaryEmail": "a@b.test",
                                              "billingAddress": {"country": "US", "city": "NYC"},
                                              "usageAttribution": {"subjectKeys": ["s"]}}, format="json").json()
    assert_matches(customer, "Customer")
    assert_matches(api.get("/api/v1/customers").json(), "CustomerPaginatedResponse")
    feature = api.post("/api/v1/features", {"key": "tokens", "name": "Tokens", "meterSlug": "tokens"},
                       format="json").json()
    assert_matches(feature, "Feature")
    assert_matches(api.get("/api/v1/features", {"page": 1}).json(), "FeaturePaginatedResponse")
    problem = api.post("/api/v1/customers", {"name": ""}, format="json").json()
    assert_matches(problem, "BadRequestProblemResponse")
