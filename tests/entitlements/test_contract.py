"""Responses validated against OpenMeter's OpenAPI schemas (skipped when the spec file is not available).

Set OPENMETER_SPEC to the spec's path; by default the shared copy of `api/openapi.yaml` is used.
"""

import datetime as dt
import os
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import time_machine
import yaml

from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

SPEC = Path(os.environ.get("OPENMETER_SPEC", "/work/shared/openmeter-api/openapi.yaml"))
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not SPEC.exists(), reason="OpenMeter OpenAPI spec not available"),
]
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
V1_SCHEMAS = {"metered": "EntitlementMetered", "static": "EntitlementStatic", "boolean": "EntitlementBoolean"}


@cache
def _components() -> dict:
    return yaml.safe_load(SPEC.read_text())["components"]


def assert_matches(name: str, body) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": _components()}
    jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())


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
        assert_matches("EntitlementMeteredV2", metered)
        assert_matches("EntitlementBooleanV2", boolean)
        assert_matches("EntitlementStaticV2", static)
        assert_matches("EntitlementGrantV2", grant)
        assert_matches("EntitlementV2PaginatedResponse", api.get("/api/v2/entitlements").json())
        assert_matches("EntitlementV2PaginatedResponse", api.get("/api/v2/customers/acme/entitlements").json())
        assert_matches("GrantV2PaginatedResponse", api.get("/api/v2/grants").json())
        assert_matches("EntitlementValueV2", api.get("/api/v2/customers/acme/entitlements/tokens/value").json())
        assert_matches("EntitlementValue", api.get("/api/v1/customers/acme/entitlements/limits/value").json())
        assert_matches("CustomerAccess", api.get("/api/v1/customers/acme/access").json())
        assert_matches("WindowedBalanceHistory", api.get("/api/v2/customers/acme/entitlements/tokens/history",
                                                         {"windowSize": "HOUR"}).json())
        for item in api.get("/api/v1/entitlements").json():
            assert_matches(V1_SCHEMAS[item["type"]], item)
        v1_grants = api.get("/api/v1/grants").json()
        # V1 requires `expiration`; never-expiring grants (V2, issueAfterReset) are rendered without it
        assert [g["id"] for g in v1_grants if "expiration" in g] == [grant["id"]]
        assert_matches("EntitlementGrant", next(g for g in v1_grants if "expiration" in g))


def test_customers_and_features_match_the_spec(api):
    MeterFactory(slug="tokens")
    customer = api.post("/api/v1/customers", {"name": "A", "key": "a", "currency": "USD", "primaryEmail": "a@b.test",
                                              "billingAddress": {"country": "US", "city": "NYC"},
                                              "usageAttribution": {"subjectKeys": ["s"]}}, format="json").json()
    assert_matches("Customer", customer)
    assert_matches("CustomerPaginatedResponse", api.get("/api/v1/customers").json())
    feature = api.post("/api/v1/features", {"key": "tokens", "name": "Tokens", "meterSlug": "tokens"},
                       format="json").json()
    assert_matches("Feature", feature)
    assert_matches("FeaturePaginatedResponse", api.get("/api/v1/features", {"page": 1}).json())
    problem = api.post("/api/v1/customers", {"name": ""}, format="json").json()
    assert_matches("BadRequestProblemResponse", problem)
