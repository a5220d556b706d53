"""Invoice actions (the API's and the admin's): advance, approve, retry, snapshot quantities, void, delete,
recalculate, and the news apps report (payments, a finished sync). Each takes the customer lock, then the invoice
row lock, in one transaction.
"""

import datetime as dt
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from billing.models import Invoice, InvoiceEvent
from billing.models import InvoiceStatus as S
from billing.plugins import SyncResult
from billing.services import state
from billing.services.issuing import advance_until_stable, apply_sync, fire
from billing.services.locks import lock_customer
from billing.services.state import Trigger
from billing.services.workflow import stored_workflow_check
from openmeter_site.core.errors import InvalidInput, NotFound


def locked_invoice(invoice_id: str) -> Invoice:
    """Customer lock, then the invoice row lock (caller is inside a transaction)."""
    head = Invoice.objects.filter(pk=invoice_id).values("customer_id").first()
    if head is None:
        raise NotFound(f"invoice {invoice_id} not found")
    lock_customer(head["customer_id"])
    return Invoice.objects.select_for_update().select_related("invoicing_app").get(pk=invoice_id)


def invoice_action(
    *, invoice_id: str, action: str, at: dt.datetime | None = None, actor: str = "api"
) -> Invoice:
    """Run an action of `statusDetails.availableActions` (advance, approve, retry, snapshotQuantities, ...)."""
    at = at or timezone.now()
    trigger = state.ACTIONS[action]
    with transaction.atomic():
        invoice = locked_invoice(invoice_id)
        if invoice.deleted_at is not None and invoice.status != S.DELETED:
            raise NotFound(f"invoice {invoice_id} not found")
        stored_workflow_check(invoice.workflow, owner=f"invoice {invoice_id}")
        if not fire(invoice, trigger, at=at, actor=actor):
            raise state.action_not_available(invoice, action)
        return advance_until_stable(invoice, at=at, actor=actor)


def invoice_advance(*, invoice_id: str, at: dt.datetime | None = None, actor: str = "api") -> Invoice:
    return invoice_action(invoice_id=invoice_id, action="advance", at=at, actor=actor)


def invoice_approve(*, invoice_id: str, at: dt.datetime | None = None, actor: str = "api") -> Invoice:
    return invoice_action(invoice_id=invoice_id, action="approve", at=at, actor=actor)


def invoice_retry(*, invoice_id: str, at: dt.datetime | None = None, actor: str = "api") -> Invoice:
    return invoice_action(invoice_id=invoice_id, action="retry", at=at, actor=actor)


def invoice_snapshot_quantities(*, invoice_id: str, at: dt.datetime | None = None, actor: str = "api") -> Invoice:
    return invoice_action(invoice_id=invoice_id, action="snapshotQuantities", at=at, actor=actor)


def invoice_void(*, invoice_id: str, reason: str = "", at: dt.datetime | None = None, actor: str = "api") -> Invoice:
    invoice = invoice_action(invoice_id=invoice_id, action="void", at=at, actor=actor)
    if reason:
        InvoiceEvent.objects.filter(invoice=invoice, to_status=S.VOIDED).update(note=reason)
    return invoice


def invoice_delete(*, invoice_id: str, at: dt.datetime | None = None, actor: str = "api") -> Invoice:
    """Drafts only; a gathering invoice's pending lines are deleted with it."""
    at = at or timezone.now()
    with transaction.atomic():
        invoice = locked_invoice(invoice_id)
        if invoice.status == S.GATHERING and invoice.deleted_at is None:
            invoice.all_lines.update(deleted_at=at)
            invoice.deleted_at = at
            invoice.save(update_fields=["deleted_at", "updated_at"])
            return invoice
        if invoice.deleted_at is not None or not fire(invoice, Trigger.DELETE, at=at, actor=actor):
            raise state.action_not_available(invoice, "delete")
        return advance_until_stable(invoice, at=at, actor=actor)


def invoice_recalculate(*, invoice_id: str, at: dt.datetime | None = None, actor: str = "api") -> Invoice:
    """Recalculate a mutable draft (taxes included: no tax app computes taxes yet, so they stay zero)."""
    at = at or timezone.now()
    with transaction.atomic():
        invoice = locked_invoice(invoice_id)
        if not fire(invoice, Trigger.UPDATED, at=at, actor=actor):
            raise state.action_not_available(invoice, "recalculateTax")
        return advance_until_stable(invoice, at=at, actor=actor)


PAYMENT_TRIGGERS = {
    "paid": Trigger.PAID,
    "payment_failed": Trigger.FAILED,
    "payment_uncollectible": Trigger.PAYMENT_UNCOLLECTIBLE,
    "payment_overdue": Trigger.PAYMENT_OVERDUE,
    "action_required": Trigger.ACTION_REQUIRED,
    "void": Trigger.VOID,
    "authorized": Trigger.AUTHORIZED,
}


def invoice_trigger_payment(*, invoice_id: str, trigger: str, at: dt.datetime | None = None, actor: str = "app") -> Invoice:
    """Payment news from an app (Stripe webhook, custom invoicing callback, sandbox). Repeating the same news is a
    no-op (the invoice already moved on); news that does not fit the current status is a 400."""
    if trigger not in PAYMENT_TRIGGERS:
        raise InvalidInput(f"trigger: must be one of {', '.join(PAYMENT_TRIGGERS)}")
    at = at or timezone.now()
    with transaction.atomic():
        invoice = locked_invoice(invoice_id)
        if invoice.status == S.ISSUED:
            fire(invoice, Trigger.NEXT, at=at, actor=actor)
        if not fire(invoice, PAYMENT_TRIGGERS[trigger], at=at, actor=actor):
            if _already_applied(invoice, trigger):
                return invoice
            raise state.action_not_available(invoice, trigger)
        return advance_until_stable(invoice, at=at, actor=actor)


def _already_applied(invoice: Invoice, trigger: str) -> bool:
    reached = {
        "paid": {S.PAID}, "void": {S.VOIDED}, "payment_uncollectible": {S.UNCOLLECTIBLE},
        "payment_overdue": {S.OVERDUE}, "payment_failed": {S.PAYMENT_FAILED},
        "action_required": {S.PAYMENT_ACTION_REQUIRED}, "authorized": {S.PAYMENT_AUTHORIZED},
    }
    return invoice.status in reached[trigger]


def _require_app(invoice: Invoice, app_type: str) -> None:
    if invoice.invoicing_app.type != app_type:
        raise InvalidInput(f"invoice {invoice.pk} is not invoiced by a {app_type} app")


def invoice_trigger_payment_from_app(*, invoice_id: str, trigger: str, app_type: str) -> Invoice:
    """Payment news from a specific app type (checked), e.g. the custom invoicing payment-status callback."""
    head = Invoice.objects.filter(pk=invoice_id).select_related("invoicing_app").first()
    if head is None:
        raise NotFound(f"invoice {invoice_id} not found")
    _require_app(head, app_type)
    return invoice_trigger_payment(invoice_id=invoice_id, trigger=trigger)


def invoice_app_sync_completed(
    *, invoice_id: str, app_type: str, step: str, result: SyncResult,
    number_if_missing: Callable[[Invoice], str] | None = None, sent_to_customer_at: dt.datetime | None = None,
    payment_external_id: str | None = None, actor: str = "app",
) -> Invoice:
    """An app of `app_type` reports that it finished `draft` (draft.syncing) or `issuing` (issuing.syncing), e.g.
    custom invoicing's callbacks. An issued invoice the app gave no number gets `number_if_missing(invoice)`."""
    expected = {"draft": S.DRAFT_SYNCING, "issuing": S.ISSUING_SYNCING}[step]
    at = timezone.now()
    with transaction.atomic():
        invoice = locked_invoice(invoice_id)
        _require_app(invoice, app_type)
        if invoice.status != expected:
            raise InvalidInput(
                f"invoice {invoice_id} is in status {invoice.status}, not {expected.value}: nothing to synchronize",
                extensions={"status": invoice.status},
            )
        if step == "issuing" and not result.invoice_number and number_if_missing is not None:
            result = SyncResult(done=True, invoice_number=number_if_missing(invoice), external_id=result.external_id)
        apply_sync(invoice, result)
        if sent_to_customer_at is not None:
            invoice.sent_to_customer_at = sent_to_customer_at
        if payment_external_id:
            invoice.external_ids = {**invoice.external_ids, "payment": payment_external_id}
        invoice.save(update_fields=["sent_to_customer_at", "external_ids", "updated_at"])
        return advance_until_stable(invoice, at=at, actor=actor)
