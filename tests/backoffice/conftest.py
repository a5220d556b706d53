"""A customer with a story: ACME on the Pro plan ($49 a month in advance, tokens at $0.10 each, metered with a
soft limit, extra seats at $5 each as an add-on, at most 10), 42 tokens used, 100 tokens granted."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest
import time_machine

from customers.models import Customer
from entitlements.models import Entitlement, Grant
from entitlements.services import GrantInput, grant_create
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import subscription_create
from tests.factories import (
    CustomerFactory,
    FeatureFactory,
    MeterFactory,
    addon_body,
    flat_fee_card,
    ingest,
    plan_body,
    usage_card,
)
from tests.subscriptions.test_lifecycle import LONG_AGO

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def pro_plan(key: str = "pro", fee: str = "49", unit: str = "0.1") -> dict:
    return plan_body(key, phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        flat_fee_card(amount=fee),
        usage_card("tokens", amount=unit, entitlementTemplate={"type": "metered", "isSoftLimit": True}),
    ]}])


@dataclass
class Story:
    customer: Customer
    subscription: Subscription
    entitlement: Entitlement
    grant: Grant


@pytest.fixture
def tokens(db):
    return FeatureFactory(key="tokens", name="Tokens", meter=MeterFactory(slug="tokens"))


def publish_plan_with_seats(api, body: dict) -> dict:
    """Publish an add-on (seats at $5, at most 10) and a plan offering it from its main phase."""
    with time_machine.travel(LONG_AGO, tick=False):
        addon = api.post("/api/v1/addons", addon_body(), format="json").json()
        api.post(f"/api/v1/addons/{addon['id']}/publish")
        plan = api.post("/api/v1/plans", body, format="json").json()
        api.post(f"/api/v1/plans/{plan['id']}/addons",
                 {"addonId": addon["id"], "fromPlanPhase": "main", "maxQuantity": 10}, format="json")
        return api.post(f"/api/v1/plans/{plan['id']}/publish").json()


@pytest.fixture
def story(api, tokens, django_capture_on_commit_callbacks) -> Story:
    publish_plan_with_seats(api, pro_plan())
    customer = CustomerFactory(key="acme", name="ACME Inc.", subjects=["acme-api"])
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        subscription = subscription_create(customer="acme", plan_key="pro")
    ingest([{"subject": "acme-api", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 42, "model": "a"}}])
    entitlement = Entitlement.objects.get(customer=customer, feature_key="tokens")
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        grant = grant_create(entitlement=entitlement, data=GrantInput(amount=Decimal(100), effective_at=T0))
    return Story(customer, subscription, entitlement, grant)
