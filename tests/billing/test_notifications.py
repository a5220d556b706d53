"""Invoice operations send `invoice.created` / `invoice.updated` webhooks after commit, once per change."""

import datetime as dt

import pytest
import time_machine

from notifications.services.channels import channel_create
from notifications.services.rules import rule_create
from tests.billing.helpers import FEB, customer, flat_line, profile
from tests.notifications.conftest import receiver  # noqa: F401 (the loopback webhook receiver fixture)

pytestmark = pytest.mark.django_db

AFTER_CLOSE = FEB + dt.timedelta(hours=2)


def test_invoice_operations_notify_after_commit(api, receiver, django_capture_on_commit_callbacks):  # noqa: F811
    channel = channel_create(name="hook", url=receiver.url)
    rule_create(type="invoice.created", name="created", channel_ids=[channel.id])
    rule_create(type="invoice.updated", name="updated", channel_ids=[channel.id])
    profile(autoAdvance=False)
    cust = customer()
    with time_machine.travel(AFTER_CLOSE, tick=False), django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                 {"currency": "USD", "lines": [flat_line(amount="12")]}, format="json")
        [inv] = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json").json()
    with time_machine.travel(AFTER_CLOSE + dt.timedelta(minutes=1), tick=False), \
            django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/billing/invoices/{inv['id']}/approve")
    sent = [r.json() for r in receiver.requests]
    # the gathering invoice sends nothing; the draft: created + updated; approving (issue, then paid): one update
    assert [(e["type"], e["data"]["status"]) for e in sent] == [
        ("invoice.created", "draft"), ("invoice.updated", "draft"), ("invoice.updated", "paid")]
    assert sent[2]["data"]["totals"]["total"] == "12"
