"""`invoice.created` / `invoice.updated` from billing's invoice audit trail (`billing.InvoiceEvent`).

Billing writes an InvoiceEvent row in the same transaction as every invoice creation (`trigger="create"`) and
status change, so the audit table is an outbox: this job reads the rows after a cursor and, per invoice, sends
`invoice.created` once (dedup key `invoice.created:<invoice>`) and one `invoice.updated` for its newest status
changes (dedup key `invoice.updated:<newest audit row id>`). An operation that walks an invoice through several
states (advance, approve) therefore sends one update with the state it ended in, not one per internal step.
The payload is the invoice as `GET /api/v1/billing/invoices/{id}` renders it when the job runs. Billing asks
for a run after each commit; the beat schedule covers a broker outage.
"""

import datetime as dt

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from billing import selectors as billing_selectors
from billing.api.render import invoice_to_api
from billing.models import Invoice, InvoiceEvent
from notifications.models import EvaluationCursor, EventType, NotificationEvent, NotificationRule
from notifications.services.evaluation import emit_invoice_event

INVOICE_CURSOR = "invoice_events"
# Audit ids are taken before their transaction commits: look again at recent rows just behind the cursor.
LATE_COMMIT_WINDOW = dt.timedelta(minutes=2)
ID_OVERLAP = 1000
BATCH = 500


def _rules_exist() -> bool:
    return NotificationRule.objects.filter(
        type__in=[EventType.INVOICE_CREATED, EventType.INVOICE_UPDATED], deleted_at__isnull=True, disabled=False
    ).exists()


def _notify(invoice: Invoice, rows: list[InvoiceEvent], at: dt.datetime) -> list[NotificationEvent]:
    payload = invoice_to_api(invoice, lines=billing_selectors.invoice_lines(invoice))
    events: list[NotificationEvent] = []
    if any(row.trigger == "create" for row in rows):
        events += emit_invoice_event(invoice_payload=payload, event_type=EventType.INVOICE_CREATED, at=at)
    changes = [row for row in rows if row.trigger != "create"]
    if changes:
        events += emit_invoice_event(
            invoice_payload=payload,
            event_type=EventType.INVOICE_UPDATED,
            dedup_key=f"invoice.updated:{changes[-1].pk}",
            at=at,
        )
    return events


def invoice_events_emit_new(*, at: dt.datetime | None = None) -> list[NotificationEvent]:
    """Notify the invoice audit rows written since the last run (one run at a time: the cursor row is locked)."""
    now = at or timezone.now()
    EvaluationCursor.objects.get_or_create(name=INVOICE_CURSOR)
    with transaction.atomic():
        cursor = EvaluationCursor.objects.select_for_update(skip_locked=True).filter(name=INVOICE_CURSOR).first()
        if cursor is None:
            return []
        if not _rules_exist():  # nothing to notify: skip the history rather than replay it when a rule appears
            cursor.position = InvoiceEvent.objects.aggregate(m=Max("id"))["m"] or cursor.position
            cursor.save(update_fields=["position", "updated_at"])
            return []
        recent = Q(id__gt=cursor.position - ID_OVERLAP, created_at__gte=now - LATE_COMMIT_WINDOW)
        rows = list(
            InvoiceEvent.objects.filter(Q(id__gt=cursor.position) | recent)
            .select_related("invoice")
            .order_by("id")[:BATCH]
        )
        by_invoice: dict[str, list[InvoiceEvent]] = {}
        for row in rows:
            by_invoice.setdefault(row.invoice_id, []).append(row)
        events: list[NotificationEvent] = []
        for invoice_rows in by_invoice.values():
            events += _notify(invoice_rows[0].invoice, invoice_rows, now)
        if rows:
            cursor.position = max(cursor.position, rows[-1].pk)
            cursor.save(update_fields=["position", "updated_at"])
    return events
