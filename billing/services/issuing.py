"""Driving invoices through the state machine of `state.py`: `fire` takes an edge and runs the step of the state it
enters (snapshot quantities, recalculate, validate, sync with the invoicing app, issue, delete, void);
`advance_until_stable` fires `next` while an automatic edge is open. A remote invoicing app is never called here:
its step commits the intent and `remote_sync` makes the call after the commit.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.events import invoices_changed
from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.plugins import SyncResult, backend_for, is_remote
from billing.services import calculation, state
from billing.services.calculation import Usage, features_by_key, is_flat
from billing.services.state import Trigger
from billing.services.workflow import add_duration, stored_workflow_check
from openmeter_site.core.broker import kick_on_commit
from openmeter_site.core.ids import new_id

MAX_ADVANCE_STEPS = 50


# --- steps run when a state is entered ------------------------------------------------------------------------

def draft_timing(invoice: Invoice, lines: Sequence[InvoiceLine]) -> None:
    """As upstream's calculator (`invoicecalc`): only usage lines wait for collection (their latest invoiceAt plus
    the collection interval; none, no collection time); the draft period counts from the later of the collection
    time and the invoice's creation, so recalculating a draft later does not move it."""
    workflow = invoice.workflow
    metered = [line.invoice_at for line in lines if not is_flat(line)]
    invoice.collection_at = add_duration(max(metered), workflow["collection"]["interval"]) if metered else None
    if workflow["invoicing"]["autoAdvance"]:
        base = max(invoice.collection_at or invoice.created_at, invoice.created_at)
        invoice.draft_until = add_duration(base, workflow["invoicing"]["draftPeriod"])
        invoice.due_at = add_duration(invoice.draft_until, workflow["invoicing"]["dueAfter"]).replace(microsecond=0)
    else:
        invoice.draft_until = None
        invoice.due_at = None


class StepFailed(Exception):
    def __init__(self, component: str, message: str) -> None:
        super().__init__(message)
        self.component = component
        self.message = message


def _lines(invoice: Invoice) -> list[InvoiceLine]:
    return list(invoice.all_lines.filter(parent__isnull=True, deleted_at__isnull=True).order_by("index", "created_at", "id"))


def _snapshot(invoice: Invoice, lines: Sequence[InvoiceLine], at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    if usage is None or any(line.pk not in usage for line in lines):
        customer = invoice.customer
        usage = calculation.usage_for_lines(
            lines,
            customer_by_invoice={invoice.pk: customer.pk},
            subjects_by_customer={customer.pk: customer.subject_keys()},
        )
    calcs = calculation.calculate_lines(lines, usage)
    calculation.store_calculation(invoice, calcs, snapshot_at=at)


def snapshot_is_final(invoice: Invoice) -> bool:
    """Quantities taken after the collection time (end of the grace period for late events) are final; without
    usage lines there is no collection time and nothing to wait for."""
    return invoice.quantity_snapshotted_at is not None and (
        invoice.collection_at is None or invoice.quantity_snapshotted_at >= invoice.collection_at)


def _step_collect(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    _snapshot(invoice, _lines(invoice), at, usage)


def _step_recalculate(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    lines = _lines(invoice)
    draft_timing(invoice, lines)
    invoice.save(update_fields=["collection_at", "draft_until", "due_at", "updated_at"])
    _snapshot(invoice, lines, at, usage)


def line_issues(lines: Sequence[InvoiceLine], features: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for each reason the lines could not be issued."""
    issues = []
    for line in lines:
        if not line.price:
            issues.append(("lines", f"line {line.pk} has no price"))
        elif not is_flat(line) and ((feature := features.get(line.feature_key or "")) is None or feature.meter is None):
            issues.append(("lines", f"line {line.pk}: feature {line.feature_key!r} not found or has no meter"))
    if any(line.total < 0 for line in lines):
        issues.append(("totals", "a line total is negative"))
    return issues


def _validation_issues(invoice: Invoice) -> list[dict[str, Any]]:
    lines = _lines(invoice)
    issues = line_issues(lines, features_by_key(line.feature_key for line in lines if line.feature_key))
    now = timezone.now().isoformat()
    return [
        {"id": new_id(), "severity": "critical", "field": f, "code": "invalid", "component": "openmeter",
         "message": m, "createdAt": now, "updatedAt": now}
        for f, m in issues
    ]


def _step_validate(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    issues = _validation_issues(invoice)
    if issues:
        raise StepFailed("openmeter", "; ".join(i["message"] for i in issues))
    if invoice.validation_issues:  # issues of an earlier attempt are resolved
        invoice.validation_issues = []
        invoice.save(update_fields=["validation_issues", "updated_at"])


def put_sync_result(invoice: Invoice, result: SyncResult) -> None:
    invoice.app_sync_done = result.done
    if result.external_id:
        invoice.external_ids = {**invoice.external_ids, "invoicing": result.external_id}
    if result.invoice_number:
        invoice.number = result.invoice_number


def apply_sync(invoice: Invoice, result: SyncResult) -> None:
    """The app's step went through: its result on the invoice, and the issue an earlier failed attempt of the app
    recorded is resolved (as upstream merges an app's issues per component)."""
    put_sync_result(invoice, result)
    app = invoice.invoicing_app.type
    invoice.validation_issues = [i for i in invoice.validation_issues or () if i.get("component") != app]
    invoice.save(update_fields=["app_sync_done", "external_ids", "number", "validation_issues", "updated_at"])
    for line_id, external_id in result.line_external_ids.items():
        InvoiceLine.objects.filter(pk=line_id, invoice=invoice).update(external_ids={"invoicing": external_id})


def call_app(invoice: Invoice, call: str) -> SyncResult:
    """`sync_draft`, `finalize` or `delete` of the invoice's invoicing app; a failure is a `StepFailed`."""
    backend = backend_for(invoice.invoicing_app)
    try:
        if call == "delete":
            backend.delete(invoice)
            return SyncResult(done=True)
        return getattr(backend, call)(invoice)
    except StepFailed:
        raise
    except Exception as exc:  # an app failure is recorded on the invoice, never lost as a 500
        raise StepFailed(invoice.invoicing_app.type, f"{call} failed: {exc}") from exc


def _remote_call_requested(invoice: Invoice) -> None:
    """Commit the intent: the invoice waits in its syncing state, and `billing.sync_remote_apps` makes the call
    after the commit (kicked then, and run every minute), outside this transaction and its locks."""
    from billing.tasks import sync_remote_apps_task

    invoice.app_sync_done = False
    invoice.save(update_fields=["app_sync_done", "updated_at"])
    kick_on_commit(sync_remote_apps_task)


def _step_sync_draft(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    if is_remote(invoice.invoicing_app):
        return _remote_call_requested(invoice)
    invoice.app_sync_done = False
    apply_sync(invoice, call_app(invoice, "sync_draft"))


def _step_finalize(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    if is_remote(invoice.invoicing_app):
        return _remote_call_requested(invoice)
    invoice.app_sync_done = False
    apply_sync(invoice, call_app(invoice, "finalize"))


def _step_issued(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    invoice.issued_at = at
    if invoice.due_at is None:
        invoice.due_at = add_duration(at, invoice.workflow["invoicing"]["dueAfter"]).replace(microsecond=0)
    invoice.save(update_fields=["issued_at", "due_at", "updated_at"])


def _step_delete_sync(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    if is_remote(invoice.invoicing_app):
        return _remote_call_requested(invoice)
    apply_sync(invoice, call_app(invoice, "delete"))


def _step_deleted(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    invoice.deleted_at = at
    invoice.save(update_fields=["deleted_at", "updated_at"])


def _step_voided(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    invoice.voided_at = at
    invoice.save(update_fields=["voided_at", "updated_at"])


STEPS = {
    S.DRAFT_COLLECTING: _step_collect,
    S.DRAFT_UPDATING: _step_recalculate,
    S.DRAFT_VALIDATING: _step_validate,
    S.DRAFT_SYNCING: _step_sync_draft,
    S.ISSUING_SYNCING: _step_finalize,
    S.ISSUED: _step_issued,
    S.DELETE_SYNCING: _step_delete_sync,
    S.DELETED: _step_deleted,
    S.VOIDED: _step_voided,
}


# steps that raise StepFailed before writing anything need no savepoint
STEPS_WITHOUT_WRITES_BEFORE_FAILING = {_step_validate}


def fire(
    invoice: Invoice, trigger: Trigger, *, at: dt.datetime, actor: str, usage: Mapping[str, Usage] | None = None
) -> bool:
    """Take the edge for `trigger` if one is open, run the new state's step; False when no edge is open."""
    edge = state.edge_for(invoice, trigger, at)
    if edge is None:
        return False
    state.move(invoice, edge.to, trigger, actor=actor)
    step = STEPS.get(edge.to)
    if step is None or (step is _step_collect and snapshot_is_final(invoice)):
        return True
    try:
        if step in STEPS_WITHOUT_WRITES_BEFORE_FAILING:
            step(invoice, at, usage)
        else:
            with transaction.atomic():  # a failed step's partial writes are undone, the move above stays
                step(invoice, at, usage)
    except StepFailed as exc:
        step_failed(invoice, exc, at=at, actor=actor)
    return True


def step_failed(invoice: Invoice, exc: StepFailed, *, at: dt.datetime, actor: str) -> None:
    """Record why the step failed as a validation issue, and take the `failed` edge."""
    invoice.refresh_from_db()
    _record_failure(invoice, exc)
    fire(invoice, Trigger.FAILED, at=at, actor=actor)


def _record_failure(invoice: Invoice, exc: StepFailed) -> None:
    now = timezone.now().isoformat()
    issues = [i for i in invoice.validation_issues or () if i.get("component") != exc.component]
    issues.append({"id": new_id(), "severity": "critical", "field": "", "code": "step_failed",
                   "component": exc.component, "message": exc.message, "createdAt": now, "updatedAt": now})
    invoice.validation_issues = issues
    invoice.save(update_fields=["validation_issues", "updated_at"])


def advance_until_stable(
    invoice: Invoice, *, at: dt.datetime, actor: str, usage: Mapping[str, Usage] | None = None, reported: bool = False
) -> Invoice:
    """Fire `next` until no automatic edge is open; then let the app react to an issued invoice (sandbox: pays).
    The caller has just changed the invoice: one `billing.invoice_changed` event reports it, unless the caller has
    `reported` it already (`drafts_create` does), in which case only a move made here publishes one."""
    stored_workflow_check(invoice.workflow, owner=f"invoice {invoice.pk}")
    if not reported:
        invoices_changed([invoice])
        reported = True
    issued_here = False
    for _ in range(MAX_ADVANCE_STEPS):
        if not fire(invoice, Trigger.NEXT, at=at, actor=actor, usage=usage):
            break
        if not reported:
            invoices_changed([invoice])
            reported = True
        issued_here = issued_here or invoice.status == S.ISSUED
    if issued_here and invoice.status == S.PAYMENT_PENDING:
        backend_for(invoice.invoicing_app).after_issued(invoice)
        invoice.refresh_from_db()
    return invoice


