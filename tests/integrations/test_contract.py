"""Our responses validate against OpenMeter's OpenAPI schemas (skipped when the spec file is not available)."""

import os
from functools import cache
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.factories import CustomerFactory
from tests.integrations.conftest import TEST_KEY
from tests.integrations.test_customer_app_data import new_stripe_customer

SPEC = Path(os.environ.get("OPENMETER_SPEC", "/work/shared/openmeter-api/openapi.yaml"))

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not SPEC.exists(), reason=f"OpenMeter spec not found at {SPEC}"),
]


@cache
def registry() -> Registry:
    spec = yaml.safe_load(SPEC.read_text())
    return Registry().with_resource("spec", Resource.opaque(spec))


def assert_matches(body, schema_name: str) -> None:
    validator = Draft202012Validator({"$ref": f"spec#/components/schemas/{schema_name}"}, registry=registry())
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_apps_and_marketplace_match_the_spec(api, stripe_api):
    installed = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")
    sandbox = api.post("/api/v1/marketplace/listings/custom_invoicing/install", {}, format="json")

    assert_matches(installed.json(), "MarketplaceInstallResponse")
    assert_matches(sandbox.json(), "MarketplaceInstallResponse")
    assert_matches(api.get("/api/v1/apps").json(), "AppPaginatedResponse")
    assert_matches(api.get("/api/v1/marketplace/listings").json(), "MarketplaceListingPaginatedResponse")
    assert_matches(api.get("/api/v1/marketplace/listings/stripe").json(), "MarketplaceListing")


def test_customer_data_and_sessions_match_the_spec(api, stripe_api):
    api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")
    CustomerFactory(key="acme")
    stripe_customer_id = new_stripe_customer(stripe_api)

    upserted = api.put("/api/v1/customers/acme/stripe", {"stripeCustomerId": stripe_customer_id}, format="json")
    listed = api.get("/api/v1/customers/acme/apps")
    portal = api.post("/api/v1/customers/acme/stripe/portal", {}, format="json")
    checkout = api.post("/api/v1/stripe/checkout/sessions", {"customer": {"key": "acme"}, "options": {}}, format="json")

    assert_matches(upserted.json(), "StripeCustomerAppData")
    assert_matches(listed.json(), "CustomerAppDataPaginatedResponse")
    assert_matches(portal.json(), "StripeCustomerPortalSession")
    assert_matches(checkout.json(), "CreateStripeCheckoutSessionResult")
