"""`invoice.created` / `invoice.updated` from billing's invoices, rendered as the invoice API renders them."""

import datetime as dt

from billing.models import Invoice
from notifications.models import EventType, NotificationEvent
from notifications.services.evaluation import emit_invoice_event
from openmeter_site.core.time import format_rfc3339


def invoice_emit(
    *, invoice_id: str, event_type: str, dedup_key: str | None = None, at: dt.datetime | None = None
) -> list[NotificationEvent]:
    """Billing calls this (through `notifications.emit_invoice_event`) after committing a create or a change.

    Idempotent for a retried task: `invoice.created` fires once per invoice, `invoice.updated` once per
    (invoice, status, updatedAt) unless the caller passes its own key.
    """
    from billing.api.render import invoice_to_api  # billing's renderer: the payload is the API's Invoice

    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None:
        return []
    if dedup_key is None and event_type == EventType.INVOICE_UPDATED:
        dedup_key = f"invoice.updated:{invoice.pk}:{invoice.status}:{format_rfc3339(invoice.updated_at)}"
    return emit_invoice_event(invoice_payload=invoice_to_api(invoice), event_type=event_type, dedup_key=dedup_key, at=at)
