"""invoice.created / invoice.updated from billing's real invoices (skipped until the billing app is merged)."""

import datetime as dt

import pytest
import time_machine

pytest.importorskip("billing.api.render")

from billing.models import Invoice
from notifications.models import NotificationEvent
from notifications.services.channels import channel_create
from notifications.services.rules import rule_create
from notifications.tasks import emit_invoice_event_task
from tests.billing.helpers import FEB, customer, flat_line, profile
from tests.notifications.contract import assert_matches

pytestmark = pytest.mark.django_db
AFTER_CLOSE = FEB + dt.timedelta(hours=2)


def standard_invoice(api) -> dict:
    profile()
    cust = customer()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        pending = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                           {"currency": "USD", "lines": [flat_line(amount="49.99")]}, format="json")
        assert pending.status_code == 201, pending.json()
        response = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json")
        assert response.status_code == 201, response.json()
    [invoice] = response.json()
    return invoice


def test_invoice_events_carry_the_invoice_and_fire_once_per_change(
    api, receiver, django_capture_on_commit_callbacks
):
    channel = channel_create(name="hook", url=receiver.url)
    rule_create(type="invoice.created", name="created", channel_ids=[channel.id])
    rule_create(type="invoice.updated", name="updated", channel_ids=[channel.id])
    invoice = standard_invoice(api)
    with django_capture_on_commit_callbacks(execute=True):
        assert emit_invoice_event_task("invoice.created", invoice["id"]) == 1
        assert emit_invoice_event_task("invoice.created", invoice["id"]) == 0  # a retried task
        assert emit_invoice_event_task("invoice.updated", invoice["id"]) == 1
        assert emit_invoice_event_task("invoice.updated", invoice["id"]) == 0  # same status and updatedAt
    created, updated = (r.json() for r in receiver.requests)
    assert all(receiver.verify(r, channel.signing_secret) for r in receiver.requests)
    assert (created["type"], updated["type"]) == ("invoice.created", "invoice.updated")
    assert created["data"]["id"] == invoice["id"]
    assert created["data"]["totals"]["total"] == "49.99"
    assert_matches(created, "NotificationEventInvoiceCreatedPayload")
    assert_matches(updated, "NotificationEventInvoiceUpdatedPayload")
    # a later change (status or updatedAt moves) is a new invoice.updated
    Invoice.objects.filter(pk=invoice["id"]).update(updated_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    with django_capture_on_commit_callbacks(execute=True):
        assert emit_invoice_event_task("invoice.updated", invoice["id"]) == 1
    assert NotificationEvent.objects.filter(type="invoice.updated").count() == 2


def test_gathering_invoices_do_not_notify(api, receiver):
    channel = channel_create(name="hook", url=receiver.url)
    rule_create(type="invoice.created", name="created", channel_ids=[channel.id])
    profile()
    cust = customer()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                 {"currency": "USD", "lines": [flat_line()]}, format="json")
    gathering = Invoice.objects.get(status="gathering")
    assert emit_invoice_event_task("invoice.created", gathering.pk) == 0
    assert emit_invoice_event_task("invoice.created", "01HZZZZZZZZZZZZZZZZZZZZZZZ") == 0  # unknown: nothing
