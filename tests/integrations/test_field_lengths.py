"""The write operations that call Stripe, walked on localstripe as tests/core/test_field_lengths.py walks the
others: no string of their bodies is a 500 for its length."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from billing.models import App
from tests.core.test_field_lengths import WRITES, Sign, walk
from tests.factories import CustomerFactory
from tests.integrations.conftest import TEST_KEY
from tests.integrations.test_customer_app_data import new_card, new_stripe_customer
from tests.integrations.test_stripe_webhook import event, sign

pytestmark = pytest.mark.django_db


@dataclass
class StripeWorld:
    app: str
    webhook_secret: str
    stripe_customer: str
    card: str


@pytest.fixture
def stripe_world(api, stripe_api) -> StripeWorld:
    installed = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")
    app = installed.json()["app"]
    CustomerFactory(key="acme", name="Acme", currency="USD", subjects=["acme"])
    stripe_customer = new_stripe_customer(stripe_api)
    api.put("/api/v1/customers/acme/stripe", {"stripeCustomerId": stripe_customer}, format="json")
    return StripeWorld(app=app["id"], webhook_secret=App.objects.get(pk=app["id"]).webhook_secret,
                       stripe_customer=stripe_customer, card=new_card(stripe_api, stripe_customer))


def _signed(world: StripeWorld) -> Sign:
    return lambda payload: {"HTTP_STRIPE_SIGNATURE": sign(payload, world.webhook_secret)}


StripeBody = Callable[[StripeWorld], tuple[str, Any]]
STRIPE_WRITES: dict[tuple[str, str], StripeBody] = {
    ("PUT", "/api/v1/apps/{id}/stripe/api-key"): lambda w: (
        f"/api/v1/apps/{w.app}/stripe/api-key", {"secretAPIKey": TEST_KEY},
    ),
    ("POST", "/api/v1/apps/{id}/stripe/webhook"): lambda w: (
        f"/api/v1/apps/{w.app}/stripe/webhook",
        json.loads(event("customer.updated", {"id": w.stripe_customer, "object": "customer"})),
    ),
    ("PUT", "/api/v1/customers/{customerIdOrKey}/stripe"): lambda w: (
        "/api/v1/customers/acme/stripe",
        {"stripeCustomerId": w.stripe_customer, "stripeDefaultPaymentMethodId": w.card},
    ),
    ("POST", "/api/v1/customers/{customerIdOrKey}/stripe/portal"): lambda w: (
        "/api/v1/customers/acme/stripe/portal", {"locale": "en", "returnUrl": "https://billing.example.com/back"},
    ),
    ("POST", "/api/v1/stripe/checkout/sessions"): lambda w: ("/api/v1/stripe/checkout/sessions", {
        "appId": w.app, "customer": {"key": "acme"}, "stripeCustomerId": w.stripe_customer,
        "options": {"successURL": "https://billing.example.com/ok", "cancelURL": "https://billing.example.com/no",
                    "clientReferenceID": "order-1", "locale": "en", "currency": "USD", "metadata": {"k": "v"}},
    }),
    ("POST", "/api/v1/marketplace/listings/{type}/install/apikey"): lambda w: (
        "/api/v1/marketplace/listings/stripe/install/apikey",
        {"apiKey": TEST_KEY, "name": "Stripe (EU)", "createBillingProfile": False},
    ),
}


def test_every_stripe_write_is_walked_here():
    assert sorted(STRIPE_WRITES) == sorted(op for op, body in WRITES.items() if body == "Stripe")


@pytest.mark.parametrize(("method", "path"), list(STRIPE_WRITES), ids=lambda v: v)
def test_no_string_of_a_stripe_write_is_a_500_for_its_length(api, stripe_world, method, path):
    concrete, body = STRIPE_WRITES[(method, path)](stripe_world)
    walk(api, method, concrete, body, _signed(stripe_world) if path.endswith("/webhook") else None)


def test_no_string_of_a_stripe_customer_app_item_is_a_500_for_its_length(api, stripe_world):
    walk(api, "PUT", "/api/v1/customers/acme/apps", [{
        "type": "stripe", "id": stripe_world.app, "stripeCustomerId": stripe_world.stripe_customer,
        "stripeDefaultPaymentMethodId": stripe_world.card, "metadata": {"k": "v"},
    }])
