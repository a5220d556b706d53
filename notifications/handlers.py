"""Notifications' reactions to the apps below it (registered in `NotificationsConfig.ready`)."""

from notifications.services.invoices import invoice_events_emit
from openmeter_site.outbox.models import OutboxEvent


def notify_invoice_changed(event: OutboxEvent) -> None:
    invoice_events_emit(invoice_id=event.payload["invoice_id"], created=event.payload["created"])
