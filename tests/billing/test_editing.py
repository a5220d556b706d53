"""Simulate (nothing saved) and update (gathering and drafts only)."""

import datetime as dt

import pytest
import time_machine

from billing.models import Invoice, InvoiceLine
from tests.billing.helpers import FEB, T0, customer, flat_line, iso, metered_feature, profile, usage_line
from tests.factories import ingest

pytestmark = pytest.mark.django_db

AFTER_CLOSE = FEB + dt.timedelta(hours=2)


def test_simulate_prices_given_quantities_without_saving(api):
    cust = customer()
    body = {"currency": "USD", "lines": [
        {**usage_line("tokens", {"type": "tiered", "mode": "graduated", "tiers": [
            {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "0.002"}},
            {"unitPrice": {"type": "unit", "amount": "0.001"}}]}), "quantity": "1500"},
        {**usage_line("tokens", {"type": "unit", "amount": "0.01"}, name="second half"), "quantity": "100",
         "preLinePeriodQuantity": "900"},
        {**flat_line(amount="9.99"), "quantity": "1"},
    ]}
    r = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/simulate", body, format="json")
    assert r.status_code == 200, r.json()
    inv = r.json()
    # 1000 * 0.002 + 500 * 0.001 = 2.50; 100 * 0.01 = 1.00; 9.99 → 13.49
    assert [line["totals"]["total"] for line in inv["lines"]] == ["2.5", "1", "9.99"]
    assert inv["totals"]["total"] == "13.49"
    assert inv["lines"][0]["children"][1]["name"] == "Tokens: usage price for tier 2"
    assert not Invoice.objects.exists()
    assert not InvoiceLine.objects.exists()


def test_simulate_rejects_a_line_without_quantity(api):
    cust = customer()
    r = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/simulate",
                 {"currency": "USD", "lines": [flat_line()]}, format="json")
    assert r.status_code == 400
    assert "quantity" in r.json()["detail"]


def test_update_draft_replaces_lines_and_recalculates(api):
    profile(autoAdvance=False)
    feature = metered_feature()
    cust = customer()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 40}}])
    with time_machine.travel(AFTER_CLOSE, tick=False):
        api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines", {"currency": "USD", "lines": [
            flat_line(amount="10"), usage_line(feature.key, {"type": "unit", "amount": "1"})]}, format="json")
        [inv] = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json").json()
        assert inv["totals"]["total"] == "50"  # 10 + 40
        usage = next(line for line in inv["lines"] if line["name"] == "Tokens")
        body = {
            "supplier": {"name": "New Supplier"}, "customer": {"name": "Acme Renamed"},
            "workflow": {"workflow": {"invoicing": {"dueAfter": "P7D"}}},
            "lines": [
                {**usage_line(feature.key, {"type": "unit", "amount": "2"}), "id": usage["id"]},
                flat_line(name="Setup", amount="5"),
            ],
        }
        r = api.put(f"/api/v1/billing/invoices/{inv['id']}", body, format="json")
    assert r.status_code == 200, r.json()
    updated = r.json()
    # the fee is gone; usage now 40 * 2 = 80; setup 5 → 85
    assert sorted(line["name"] for line in updated["lines"]) == ["Setup", "Tokens"]
    assert updated["totals"]["total"] == "85"
    assert updated["supplier"]["name"] == "New Supplier"
    assert updated["customer"]["name"] == "Acme Renamed"
    assert "acme" in updated["customer"]["usageAttribution"]["subjectKeys"]
    assert updated["workflow"]["workflow"]["invoicing"]["dueAfter"] == "P7D"
    assert updated["statusDetails"]["extendedStatus"] == "draft.manual_approval_needed"


def test_update_issued_invoice_is_400_and_changes_nothing(api):
    cust = customer()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines", {"currency": "USD", "lines": [
            flat_line(amount="10")]}, format="json")
        [inv] = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json").json()
    body = {"supplier": {"name": "X"}, "customer": {"name": "Y"}, "workflow": {}, "lines": [flat_line(amount="1")]}
    r = api.put(f"/api/v1/billing/invoices/{inv['id']}", body, format="json")
    assert r.status_code == 400
    assert "paid" in r.json()["detail"]
    assert Invoice.objects.get(pk=inv["id"]).supplier == {"name": "Default Supplier"}
    assert InvoiceLine.objects.filter(parent__isnull=True, deleted_at__isnull=True).count() == 1


def test_update_gathering_invoice_lines(api):
    cust = customer()
    created = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines", {"currency": "USD", "lines": [
        flat_line(amount="10")]}, format="json").json()
    body = {"supplier": {}, "customer": {}, "workflow": {},
            "lines": [flat_line(amount="12", start=FEB, end=FEB + dt.timedelta(days=28))]}
    r = api.put(f"/api/v1/billing/invoices/{created['invoice']['id']}", body, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "gathering"
    assert [line["period"]["from"] for line in r.json()["lines"]] == [iso(FEB)]


def test_recalculate_picks_up_late_usage_on_a_draft_and_is_400_once_issued(api):
    profile(autoAdvance=False)
    feature = metered_feature()
    cust = customer()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 10}}])
    with time_machine.travel(AFTER_CLOSE, tick=False):
        api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines", {"currency": "USD", "lines": [
            usage_line(feature.key, {"type": "unit", "amount": "1"})]}, format="json")
        [inv] = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json").json()
        assert inv["totals"]["total"] == "10"
        ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=2), "data": {"tokens": 5}}])
        r = api.post(f"/api/v1/billing/invoices/{inv['id']}/taxes/recalculate")
        assert r.status_code == 200, r.json()
        # 15 tokens * 1; still waiting for approval
        assert r.json()["totals"]["total"] == "15"
        assert r.json()["statusDetails"]["extendedStatus"] == "draft.manual_approval_needed"
        api.post(f"/api/v1/billing/invoices/{inv['id']}/approve")
        r = api.post(f"/api/v1/billing/invoices/{inv['id']}/taxes/recalculate")
    assert r.status_code == 400
