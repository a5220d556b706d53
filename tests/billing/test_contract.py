"""Billing responses validated against OpenMeter's OpenAPI schemas."""

import datetime as dt

import pytest
import time_machine

from tests.billing.helpers import FEB, T0, customer, flat_line, metered_feature, profile, usage_line
from tests.contract.spec import assert_matches
from tests.factories import ingest

pytestmark = pytest.mark.django_db

AFTER_CLOSE = FEB + dt.timedelta(hours=2)
GRADUATED = {"type": "tiered", "mode": "graduated", "tiers": [
    {"upToAmount": "10", "flatPrice": {"type": "flat", "amount": "1"}, "unitPrice": {"type": "unit", "amount": "0.5"}},
    {"unitPrice": {"type": "unit", "amount": "0.1"}}]}


def test_profile_and_override_shapes(api):
    listed = api.get("/api/v1/billing/profiles").json()
    assert_matches(listed, "BillingProfilePaginatedResponse")
    default = listed["items"][0]
    assert_matches(api.get(f"/api/v1/billing/profiles/{default['id']}?expand=apps").json(), "BillingProfile")
    cust = customer()
    assert_matches(api.put(f"/api/v1/billing/customers/{cust.pk}", {}, format="json").json(),
                   "BillingProfileCustomerOverrideWithDetails")
    assert_matches(api.get("/api/v1/billing/customers?expand=customer&expand=apps").json(),
                   "BillingProfileCustomerOverrideWithDetailsPaginatedResponse")


def test_invoice_shapes(api):
    profile(autoAdvance=False)
    feature = metered_feature()
    cust = customer()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 25}}])
    with time_machine.travel(AFTER_CLOSE, tick=False):
        created = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines", {"currency": "USD", "lines": [
            flat_line(amount="10"),
            usage_line(feature.key, GRADUATED, discounts={"percentage": {"percentage": 10}}),
        ]}, format="json").json()
        assert_matches(created, "InvoicePendingLineCreateResponse")
        invoices = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json").json()
        for invoice in invoices:
            assert_matches(invoice, "Invoice")
        draft = invoices[0]
        paid = api.post(f"/api/v1/billing/invoices/{draft['id']}/approve").json()
        assert_matches(paid, "Invoice")
    assert_matches(api.get("/api/v1/billing/invoices?expand=lines&expand=workflow.apps").json(),
                   "InvoicePaginatedResponse")
    simulated = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/simulate", {"currency": "USD", "lines": [
        {**usage_line(feature.key, GRADUATED), "quantity": "30"}]}, format="json").json()
    assert_matches(simulated, "Invoice")
