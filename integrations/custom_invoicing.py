"""Custom invoicing: an external system issues the invoices. With a hook flag on, the invoice waits in
`draft.syncing` / `issuing.syncing` until the matching callback (`integrations/api/custom_invoicing.py`) arrives;
with it off, the step completes at once. Payment news comes through the payment-status callback."""

from typing import TYPE_CHECKING

from integrations.backends import SyncResult
from integrations.models import App

if TYPE_CHECKING:
    from billing.models import Invoice

NUMBER_PREFIX = "INV"


class CustomInvoicingBackend:
    sync_draft_is_local = True

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
