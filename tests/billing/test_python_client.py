"""The main billing flow through the official Python client against the real HTTP stack (gunicorn)."""

import datetime as dt

import pytest
from django.utils import timezone
from openmeter import Client

from tests.billing.helpers import customer, iso, metered_feature
from tests.factories import ingest


@pytest.mark.django_db(transaction=True)
def test_profile_pending_lines_invoice_approve_list(live_server_url, api_key):
    client = Client(endpoint=live_server_url, token=api_key)
    feature = metered_feature()
    cust = customer(name="Wayne Enterprises", subjects=("wayne",))
    start = (timezone.now() - dt.timedelta(days=40)).replace(microsecond=0)
    end = start + dt.timedelta(days=30)
    ingest([{"subject": "wayne", "type": "tokens", "time": start + dt.timedelta(days=2), "data": {"tokens": 2500}}])

    # a manual-approval profile on the sandbox app becomes the default
    default = next(p for p in client.billing_profiles.list()["items"] if p.default)
    sandbox_id = default.apps["tax"]["id"]
    created = client.billing_profiles.create({
        "name": "Manual approval", "supplier": {"name": "Wayne Billing"}, "default": True,
        "workflow": {"invoicing": {"autoAdvance": False}},
        "apps": {"tax": sandbox_id, "invoicing": sandbox_id, "payment": sandbox_id},
    })
    assert created.default is True
    assert client.billing_profiles.get(created.id).workflow["invoicing"]["autoAdvance"] is False

    # pending lines: a flat fee in advance and usage at 0.002 per token
    pending = client.customer_invoice.create_pending_invoice_line(cust.pk, {
        "currency": "USD",
        "lines": [
            {"name": "Seat", "period": {"from": iso(start), "to": iso(end)}, "invoiceAt": iso(start),
             "rateCard": {"price": {"type": "flat", "amount": "30", "paymentTerm": "in_advance"}}},
            {"name": "Tokens", "period": {"from": iso(start), "to": iso(end)}, "invoiceAt": iso(end),
             "rateCard": {"featureKey": feature.key, "price": {"type": "unit", "amount": "0.002"}}},
        ],
    })
    assert pending.is_invoice_new is True
    assert pending.invoice.status == "gathering"

    [invoice] = client.invoices.invoice_pending_lines_action({"customerId": cust.pk})
    # 30 + 2,500 * 0.002 = 35
    assert invoice.totals.total == "35"
    assert invoice.status_details.extended_status == "draft.manual_approval_needed"

    approved = client.invoice.approve_action(invoice.id)
    assert approved.status == "paid"
    assert approved.number.startswith("OM-SANDBOX-WAEN-")

    listed = client.invoices.list(statuses=["paid"], expand=["lines"])
    assert [i.id for i in listed["items"]] == [invoice.id]
    assert {line.name for line in listed["items"][0].lines} == {"Seat", "Tokens"}

    override = client.customer_overrides.get(cust.pk)
    assert override.base_billing_profile_id == created.id
