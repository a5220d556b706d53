"""Custom invoicing: the invoice waits in draft.syncing / issuing.syncing until the integration calls back."""

import datetime as dt

import pytest
import time_machine

from billing.models import Invoice, InvoiceLine
from tests.billing.helpers import FEB, custom_invoicing_app, customer, flat_line, profile

pytestmark = pytest.mark.django_db

AT = FEB + dt.timedelta(hours=2)
BASE = "/api/v1/apps/custom-invoicing"


def _draft(api, **hooks) -> dict:
    profile(app=custom_invoicing_app(**hooks))
    cust = customer()
    with time_machine.travel(AT, tick=False):
        api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                 {"currency": "USD", "lines": [flat_line(amount="10")]}, format="json")
        r = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json")
    return r.json()[0]


def test_full_custom_invoicing_flow(api):
    inv = _draft(api)
    assert inv["statusDetails"]["extendedStatus"] == "draft.syncing"
    line_id = inv["lines"][0]["id"]
    # draft synchronized: external ids recorded, the invoice moves on until the issuing hook
    with time_machine.travel(AT, tick=False):
        r = api.post(f"{BASE}/{inv['id']}/draft/synchronized", {"invoicing": {
            "externalId": "erp-1", "lineExternalIds": [{"lineId": line_id, "externalId": "erp-line-1"}]}}, format="json")
    assert r.status_code == 204
    invoice = Invoice.objects.get(pk=inv["id"])
    assert invoice.status == "issuing.syncing"
    assert invoice.external_ids == {"invoicing": "erp-1"}
    assert InvoiceLine.objects.get(pk=line_id).external_ids == {"invoicing": "erp-line-1"}
    # a second draft callback is out of order now
    r = api.post(f"{BASE}/{inv['id']}/draft/synchronized", {}, format="json")
    assert r.status_code == 400
    # issuing synchronized with the ERP's number
    r = api.post(f"{BASE}/{inv['id']}/issuing/synchronized", {"invoicing": {
        "invoiceNumber": "ERP-2026-0001", "sentToCustomerAt": "2026-02-01T03:00:00Z"}, "payment": {"externalId": "pay-1"}},
        format="json")
    assert r.status_code == 204
    got = api.get(f"/api/v1/billing/invoices/{inv['id']}").json()
    assert got["statusDetails"]["extendedStatus"] == "payment_processing.pending"
    assert got["number"] == "ERP-2026-0001"
    assert got["sentToCustomerAt"] == "2026-02-01T03:00:00Z"
    assert got["externalIds"] == {"invoicing": "erp-1", "payment": "pay-1"}
    # payment status
    assert api.post(f"{BASE}/{inv['id']}/payment/status", {"trigger": "paid"}, format="json").status_code == 204
    assert Invoice.objects.get(pk=inv["id"]).status == "paid"
    # the same news again is harmless
    assert api.post(f"{BASE}/{inv['id']}/payment/status", {"trigger": "paid"}, format="json").status_code == 204
    # news that does not fit the status is a 400
    r = api.post(f"{BASE}/{inv['id']}/payment/status", {"trigger": "payment_overdue"}, format="json")
    assert r.status_code == 400


def test_hooks_off_issue_at_once_with_generated_number(api):
    inv = _draft(api, draft_hook=False, issuing_hook=False)
    assert inv["statusDetails"]["extendedStatus"] == "payment_processing.pending"
    assert inv["number"] == "INV-ACCO-1"


def test_payment_status_validation(api):
    inv = _draft(api, draft_hook=False, issuing_hook=False)
    r = api.post(f"{BASE}/{inv['id']}/payment/status", {"trigger": "teleported"}, format="json")
    assert r.status_code == 400
    assert r["Content-Type"] == "application/problem+json"
    r = api.post(f"{BASE}/{inv['id']}/payment/status", {"trigger": "payment_overdue"}, format="json")
    assert r.status_code == 204
    assert Invoice.objects.get(pk=inv["id"]).status == "overdue"
    assert api.post(f"{BASE}/01G65Z755AFWAKHE12NY0CQ9FH/payment/status", {"trigger": "paid"},
                    format="json").status_code == 404


def test_callbacks_refuse_invoices_of_other_apps(api):
    cust = customer()
    with time_machine.travel(AT, tick=False):
        api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                 {"currency": "USD", "lines": [flat_line(amount="10")]}, format="json")
        sandbox_invoice = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json").json()[0]
    r = api.post(f"{BASE}/{sandbox_invoice['id']}/payment/status", {"trigger": "void"}, format="json")
    assert r.status_code == 400
    assert Invoice.objects.get(pk=sandbox_invoice["id"]).status == "paid"
