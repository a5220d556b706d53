"""`invoice.created` / `invoice.updated` from billing's invoice audit trail (`billing.InvoiceEvent`).

Billing writes an InvoiceEvent row in the same transaction as every invoice creation (`trigger="create"`) and
status change, so the audit table is an outbox: this job reads the rows after a cursor and notifies each one
once (dedup keys `invoice.created:<invoice>` and `invoice.updated:<audit row id>`). Billing needs no call into
notifications. The payload is the invoice as `GET /api/v1/billing/invoices/{id}` renders it, at the time the
job runs (so a burst of changes between two runs carries the latest state in each event).
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


def _notify(row: InvoiceEvent, payloads: dict[str, dict], at: dt.datetime) -> list[NotificationEvent]:
    invoice: Invoice = row.invoice
    if invoice.pk not in payloads:
        payloads[invoice.pk] = invoice_to_api(invoice, lines=billing_selectors.invoice_lines(invoice))
    if row.trigger == "create":
        return emit_invoice_event(invoice_payload=payloads[invoice.pk], event_type=EventType.INVOICE_CREATED, at=at)
    return emit_invoice_event(
        invoice_payload=payloads[invoice.pk],
        event_type=EventType.INVOICE_UPDATED,
        dedup_key=f"invoice.updated:{row.pk}",
        at=at,
    )


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
        events: list[NotificationEvent] = []
        payloads: dict[str, dict] = {}
        for row in rows:
            events += _notify(row, payloads, now)
        if rows:
            cursor.position = max(cursor.position, rows[-1].pk)
            cursor.save(update_fields=["position", "updated_at"])
    return events
