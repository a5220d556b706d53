"""Invoices waiting on a remote invoicing app (a plug-in registered with `remote=True`, such as Stripe).

No network call runs inside a transaction or under row locks. Three steps:
1. intent: the state machine enters `draft.syncing`, `issuing.syncing` or `delete.syncing` and commits with
   `app_sync_done` false (`issuing._remote_call_requested`), which kicks `billing.sync_remote_apps`;
2. call: this module calls the app outside any transaction (the app gives each request an idempotency key
   derived from our ids, and keeps its own progress markers, each committed as it goes);
3. result: a new transaction takes the customer and invoice locks, checks that the invoice still waits for this
   call, applies the result (or the failure) and advances the invoice.
A crash anywhere leaves the invoice waiting in its syncing state; the job (every minute) repeats the call with the
same keys, which the app answers with what it already did, and the same end state is committed. A session-level
advisory lock keeps two workers from calling the app for one invoice at once; neither blocks anything else.
"""

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from django.utils import timezone

from billing import plugins
from billing.events import invoices_changed
from billing.models import Invoice
from billing.models import InvoiceStatus as S
from billing.plugins import SyncResult
from billing.services.actions import locked_invoice
from billing.services.issuing import StepFailed, advance_until_stable, apply_sync, call_app, step_failed

REMOTE_CALLS = {S.DRAFT_SYNCING: "sync_draft", S.ISSUING_SYNCING: "finalize", S.DELETE_SYNCING: "delete"}
ACTOR = "job:remote-sync"


def remote_syncs_due(*, limit: int) -> list[str]:
    """Invoices whose remote app call is still to make, oldest first."""
    return list(
        Invoice.objects.filter(
            status__in=list(REMOTE_CALLS), app_sync_done=False, invoicing_app__type__in=plugins.remote_app_types()
        ).order_by("updated_at", "id").values_list("pk", flat=True)[:limit]
    )


def sync_remote_apps(*, limit: int = 100) -> int:
    """Make the due remote calls; the number of invoices whose result was committed."""
    return sum(invoice_sync_with_remote_app(invoice_id=invoice_id) for invoice_id in remote_syncs_due(limit=limit))


@contextmanager
def _calling(invoice_id: str) -> Iterator[bool]:
    """True while this session alone calls the app for the invoice (a session lock: no transaction is open)."""
    key = f"billing:remote-sync:{invoice_id}"
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key])
        held = bool(cur.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])


def invoice_sync_with_remote_app(*, invoice_id: str, at: dt.datetime | None = None) -> bool:
    """Step 2 and 3 for one invoice; False when it no longer waits for a call (or another worker is making it)."""
    with _calling(invoice_id) as held:
        if not held:
            return False
        invoice = Invoice.objects.select_related("invoicing_app", "customer").filter(pk=invoice_id).first()
        if invoice is None or invoice.app_sync_done or invoice.status not in REMOTE_CALLS:
            return False
        waiting_in = S(invoice.status)
        try:
            outcome: SyncResult | StepFailed = call_app(invoice, REMOTE_CALLS[waiting_in])
        except StepFailed as exc:
            outcome = exc
        return _commit_result(invoice_id, waiting_in, outcome, at or timezone.now())


def _commit_result(invoice_id: str, waiting_in: S, outcome: SyncResult | StepFailed, at: dt.datetime) -> bool:
    with transaction.atomic():
        invoice = locked_invoice(invoice_id)
        if invoice.status != waiting_in or invoice.app_sync_done:
            return False  # it moved on meanwhile (deleted, or another run committed this result)
        invoices_changed([invoice])
        if isinstance(outcome, StepFailed):
            step_failed(invoice, outcome, at=at, actor=ACTOR)
        else:
            apply_sync(invoice, outcome)
            advance_until_stable(invoice, at=at, actor=ACTOR, reported=True)
    return True
