"""Custom invoicing: an external system issues the invoices. With a hook flag on, the invoice waits in
`draft.syncing` / `issuing.syncing` until the matching callback (`integrations/api/custom_invoicing.py`) arrives;
with it off, the step completes at once. Payment news comes through the payment-status callback."""

import datetime as dt
from typing import TYPE_CHECKING

from billing.models import App
from billing.plugins import SyncResult
from billing.services.actions import invoice_app_sync_completed, invoice_trigger_payment_from_app
from integrations.models import AppType

if TYPE_CHECKING:
    from billing.models import Invoice

NUMBER_PREFIX = "INV"


class CustomInvoicingBackend:
    def __init__(self, app: App) -> None:
        self.app = app

    def sync_draft(self, invoice: "Invoice") -> SyncResult:
        return SyncResult(done=not self.app.enable_draft_sync_hook)

    def finalize(self, invoice: "Invoice") -> SyncResult:
        if self.app.enable_issuing_sync_hook:
            return SyncResult(done=False)
        return SyncResult(done=True, invoice_number=generated_number(invoice))

    def delete(self, invoice: "Invoice") -> None:
        return None

    def after_issued(self, invoice: "Invoice") -> None:
        return None  # the integration reports payment through the payment/status callback


def generated_number(invoice: "Invoice") -> str:
    from billing.services.numbering import final_number

    return final_number(
        profile_id=invoice.billing_profile_id,
        customer_name=invoice.customer_snapshot.get("name", ""),
        prefix=NUMBER_PREFIX,
    )


def custom_invoicing_synchronized(
    *, invoice_id: str, step: str, result: SyncResult, sent_to_customer_at: dt.datetime | None = None,
    payment_external_id: str | None = None,
) -> "Invoice":
    """The external system finished the `draft` or `issuing` step (an issued invoice it gave no number gets ours)."""
    return invoice_app_sync_completed(
        invoice_id=invoice_id, app_type=AppType.CUSTOM_INVOICING, step=step, result=result,
        number_if_missing=generated_number, sent_to_customer_at=sent_to_customer_at,
        payment_external_id=payment_external_id,
    )


def custom_invoicing_payment_status(*, invoice_id: str, trigger: str) -> "Invoice":
    return invoice_trigger_payment_from_app(invoice_id=invoice_id, trigger=trigger, app_type=AppType.CUSTOM_INVOICING)
