"""Domain events billing publishes through the outbox; apps above subscribe to them in `AppConfig.ready`."""

from collections.abc import Sequence
from typing import TypedDict

from billing.models import Invoice
from billing.models import InvoiceStatus as S
from openmeter_site.outbox.services import publish_all

INVOICE_CHANGED = "billing.invoice_changed"


class InvoiceChanged(TypedDict):
    invoice_id: str
    created: bool  # the change created the invoice


def invoices_changed(invoices: Sequence[Invoice], *, created: bool = False) -> None:
    """Invoices were created or changed state (each step also writes an `InvoiceEvent` audit row). Gathering
    invoices are billing's work in progress and publish nothing."""
    publish_all(INVOICE_CHANGED, [InvoiceChanged(invoice_id=invoice.pk, created=created)
                                  for invoice in invoices if invoice.status != S.GATHERING])
