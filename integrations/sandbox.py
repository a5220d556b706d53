"""The sandbox app: installed by default; invoices sync and issue at once, and payment is settled right after
issuing unless invoice metadata `openmeter.io/sandbox/target-payment-status` asks for another outcome."""

from typing import TYPE_CHECKING

from django.db import transaction

from billing.models import App
from billing.plugins import SyncResult
from integrations.models import AppType

if TYPE_CHECKING:
    from billing.models import Invoice

TARGET_PAYMENT_STATUS_KEY = "openmeter.io/sandbox/target-payment-status"
# metadata value → payment trigger fired after issuing (anything else: paid)
TARGET_TRIGGERS = {
    "failed": "payment_failed",
    "uncollectible": "payment_uncollectible",
    "action_required": "action_required",
    "paid": "paid",
}
NUMBER_PREFIX = "OM-SANDBOX"


def sandbox_app_ensure() -> App:
    """The sandbox app, created on first use (idempotent, safe with concurrent callers)."""
    from billing.services.locks import advisory_lock

    app = App.objects.filter(type=AppType.SANDBOX, deleted_at__isnull=True).order_by("created_at").first()
    if app is not None:
        return app
    with transaction.atomic():
        advisory_lock("integrations:sandbox-app")
        app = App.objects.filter(type=AppType.SANDBOX, deleted_at__isnull=True).order_by("created_at").first()
        return app or App.objects.create(type=AppType.SANDBOX, name="Sandbox", description="Sandbox app")


class SandboxBackend:
    def __init__(self, app: App) -> None:
        self.app = app

    def sync_draft(self, invoice: "Invoice") -> SyncResult:
        return SyncResult(done=True)

    def finalize(self, invoice: "Invoice") -> SyncResult:
        from billing.services.numbering import final_number

        number = final_number(
            profile_id=invoice.billing_profile_id,
            customer_name=invoice.customer_snapshot.get("name", ""),
            prefix=NUMBER_PREFIX,
        )
        return SyncResult(done=True, invoice_number=number)

    def delete(self, invoice: "Invoice") -> None:
        return None

    def after_issued(self, invoice: "Invoice") -> None:
        from billing.services import invoice_trigger_payment

        target = (invoice.metadata or {}).get(TARGET_PAYMENT_STATUS_KEY, "paid")
        invoice_trigger_payment(invoice_id=invoice.id, trigger=TARGET_TRIGGERS.get(target, "paid"))
