"""The contract between invoicing (billing) and the apps that issue and collect invoices.

The invoice state machine calls the invoicing app of an invoice's workflow at two steps:
`draft.syncing` → `sync_draft`, `issuing.syncing` → `finalize`. A backend that answers `done=False` makes the
invoice wait in that state until an external callback (custom invoicing's `draft/synchronized` or
`issuing/synchronized`) completes the step. Payment news (Stripe webhooks, custom invoicing's payment status)
comes back through `billing.services.invoice_trigger_payment(...)`.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from integrations.models import App, AppType

if TYPE_CHECKING:
    from billing.models import Invoice


@dataclass(frozen=True)
class SyncResult:
    done: bool
    invoice_number: str | None = None
    external_id: str | None = None
    line_external_ids: dict[str, str] = field(default_factory=dict)


class InvoicingBackend(Protocol):
    # `sync_draft` neither reads nor writes anything nor calls out, and returns no line ids: billing may then sync
    # a new draft before saving it (the period close does, for many invoices at once)
    sync_draft_is_local: bool

    def sync_draft(self, invoice: "Invoice") -> SyncResult: ...

    def finalize(self, invoice: "Invoice") -> SyncResult: ...

    def delete(self, invoice: "Invoice") -> None: ...

    def after_issued(self, invoice: "Invoice") -> None: ...


def backend_for(app: App) -> InvoicingBackend:
    if app.type == AppType.SANDBOX:
        from integrations.sandbox import SandboxBackend

        return SandboxBackend(app)
    if app.type == AppType.CUSTOM_INVOICING:
        from integrations.custom_invoicing import CustomInvoicingBackend

        return CustomInvoicingBackend(app)
    if app.type == AppType.STRIPE:
        from integrations.stripe.invoicing import StripeInvoicingBackend

        return StripeInvoicingBackend(app)
    raise ValueError(f"no invoicing backend for app type {app.type}")
