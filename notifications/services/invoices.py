"""`invoice.created` / `invoice.updated` from billing's `billing.invoice_changed` domain events.

Billing publishes the event through the outbox in the same transaction as an invoice's creation or state change,
and writes an `InvoiceEvent` audit row for each step. Handling an event sends `invoice.created` once per invoice
(dedup key `invoice.created:<invoice>`) when the event reports the creation, and one `invoice.updated` for the
invoice's newest state change (dedup key `invoice.updated:<newest audit row id>`). An operation that walks an
invoice through several states (advance, approve) therefore sends one update with the state it ended in, and a
repeated delivery sends nothing new. The payload is the invoice as `GET /api/v1/billing/invoices/{id}` renders it
when the event is handled.
"""

import datetime as dt

from billing import selectors as billing_selectors
from billing.api.render import invoice_to_api
from billing.models import Invoice, InvoiceEvent
from notifications.models import EventType, NotificationEvent, NotificationRule
from notifications.services.evaluation import emit_invoice_event


def _rules_exist() -> bool:
    return NotificationRule.objects.filter(
        type__in=[EventType.INVOICE_CREATED, EventType.INVOICE_UPDATED], deleted_at__isnull=True, disabled=False
    ).exists()


def invoice_events_emit(*, invoice_id: str, created: bool, at: dt.datetime | None = None) -> list[NotificationEvent]:
    """Notify one invoice's creation (when `created`) and its newest state change, each at most once."""
    if not _rules_exist():
        return []
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None:
        return []
    newest_change = InvoiceEvent.objects.filter(invoice_id=invoice_id).exclude(trigger="create").order_by("-id").first()
    if not created and newest_change is None:
        return []
    payload = invoice_to_api(invoice, lines=billing_selectors.invoice_lines(invoice))
    events: list[NotificationEvent] = []
    if created:
        events += emit_invoice_event(invoice_payload=payload, event_type=EventType.INVOICE_CREATED, at=at)
    if newest_change is not None:
        events += emit_invoice_event(
            invoice_payload=payload,
            event_type=EventType.INVOICE_UPDATED,
            dedup_key=f"invoice.updated:{newest_change.pk}",
            at=at,
        )
    return events
