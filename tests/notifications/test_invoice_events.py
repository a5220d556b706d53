"""invoice.created / invoice.updated from billing's real invoices: their `billing.invoice_changed` domain events,
relayed by the outbox, and their audit trail."""

import datetime as dt

import pytest
import time_machine

from billing.models import Invoice, InvoiceEvent
from notifications.models import NotificationEvent
from notifications.services.channels import channel_create
from notifications.services.rules import rule_create
from openmeter_site.outbox.tasks import relay_task
from tests.billing.helpers import FEB, customer, flat_line, profile
from tests.contract.spec import assert_matches

pytestmark = pytest.mark.django_db
AFTER_CLOSE = FEB + dt.timedelta(hours=2)


def pending(api, cust, amount="49.99"):
    with time_machine.travel(AFTER_CLOSE, tick=False):
        response = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                            {"currency": "USD", "lines": [flat_line(amount=amount)]}, format="json")
    assert response.status_code == 201, response.json()


def invoice_now(api, cust) -> dict:
    with time_machine.travel(AFTER_CLOSE, tick=False):
        response = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json")
    assert response.status_code == 201, response.json()
    [invoice] = response.json()
    return invoice


@pytest.fixture
def channel(receiver):
    channel = channel_create(name="hook", url=receiver.url)
    rule_create(type="invoice.created", name="created", channel_ids=[channel.id])
    rule_create(type="invoice.updated", name="updated", channel_ids=[channel.id])
    return channel


def relay(capture, minutes: int = 1) -> int:
    """The outbox relay (the API calls above ran in the test's transaction, so nothing was relayed on commit)."""
    with time_machine.travel(AFTER_CLOSE + dt.timedelta(minutes=minutes), tick=False), capture(execute=True):
        return relay_task()


def test_invoice_created_and_updated_once_per_run(api, channel, receiver, django_capture_on_commit_callbacks):
    # given a standard invoice issued (and paid) at once by the sandbox app
    profile()
    cust = customer()
    pending(api, cust)
    invoice = invoice_now(api, cust)
    changes = InvoiceEvent.objects.filter(invoice_id=invoice["id"]).exclude(trigger="create").count()
    assert changes >= 1
    # when the relay runs (twice: the second run finds nothing new)
    assert relay(django_capture_on_commit_callbacks) > 0
    assert relay(django_capture_on_commit_callbacks) == 0
    # then one invoice.created and one invoice.updated carrying the state the steps ended in, signed
    bodies = [r.json() for r in receiver.requests]
    assert [b["type"] for b in bodies] == ["invoice.created", "invoice.updated"]
    assert bodies[1]["data"]["status"] == "paid"
    assert all(receiver.verify(r, channel.signing_secret) for r in receiver.requests)
    created = next(b for b in bodies if b["type"] == "invoice.created")
    assert created["data"]["id"] == invoice["id"]
    assert created["data"]["totals"]["total"] == "49.99"
    assert [line["name"] for line in created["data"]["lines"]] == ["Platform fee"]
    assert_matches(created, "NotificationEventInvoiceCreatedPayload")
    assert_matches(next(b for b in bodies if b["type"] == "invoice.updated"), "NotificationEventInvoiceUpdatedPayload")


def test_gathering_invoices_do_not_notify(api, channel, receiver, django_capture_on_commit_callbacks):
    profile()
    pending(api, customer())
    assert Invoice.objects.filter(status="gathering").exists()
    assert relay(django_capture_on_commit_callbacks) == 0  # no domain event at all
    assert receiver.requests == []


def test_history_is_not_replayed_when_a_rule_appears(api, receiver, django_capture_on_commit_callbacks):
    # given invoices made while no invoice rule existed
    profile()
    cust = customer()
    pending(api, cust)
    invoice_now(api, cust)
    assert relay(django_capture_on_commit_callbacks) > 0
    # when a rule is created afterwards
    channel = channel_create(name="hook", url=receiver.url)
    rule_create(type="invoice.created", name="created", channel_ids=[channel.id])
    # then the old invoices are not notified
    assert relay(django_capture_on_commit_callbacks, minutes=10) == 0
    assert NotificationEvent.objects.count() == 0
