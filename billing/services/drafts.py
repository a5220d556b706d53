"""Drafts: the due lines of gathering invoices become standard invoices, many at once for the period close
(`drafts_create`) or for one customer now (`invoice_pending_lines`, progressive billing included).
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from billing.events import invoices_changed
from billing.models import BillingProfile, Invoice, InvoiceEvent, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.plugins import backend_for, is_remote
from billing.services import calculation, numbering, state
from billing.services.calculation import Usage, features_by_key
from billing.services.gathering import customer_get, new_invoice, refresh_gathering
from billing.services.issuing import advance_until_stable, draft_timing, line_issues, put_sync_result, snapshot_is_final
from billing.services.locks import lock_customer
from billing.services.pricing import sum_totals
from billing.services.profiles import profile_for_customer
from billing.services.progressive import split_at, splittable_at
from billing.services.state import Trigger
from customers.models import Customer
from openmeter_site.core.bulk import copy_insert
from openmeter_site.core.errors import InvalidInput


def _eligible_lines(
    gathering: Sequence[Invoice], as_of: dt.datetime, line_ids: Sequence[str] | None, progressive: bool | None
) -> list[InvoiceLine]:
    lines = list(
        InvoiceLine.objects.filter(invoice__in=gathering, parent__isnull=True, deleted_at__isnull=True)
        .select_related("invoice")
        .order_by("period_start", "created_at", "id")
    )
    if line_ids:
        missing = set(line_ids) - {line.pk for line in lines}
        if missing:
            raise InvalidInput(f"filters.lineIds: not pending lines of the customer: {', '.join(sorted(missing))}")
        lines = [line for line in lines if line.pk in set(line_ids)]
    splittable = splittable_at(lines if progressive is not False else [], as_of)  # period close: no query
    out = []
    for line in lines:
        wants_progressive = progressive
        if wants_progressive is None:
            wants_progressive = line.invoice.workflow["invoicing"]["progressiveBilling"]
        if line.invoice_at <= as_of:
            out.append(line)
        elif wants_progressive and line.pk in splittable:
            out.append(split_at(line, as_of))
    return out




@dataclass(frozen=True)
class DraftPlan:
    """One standard invoice to make from a gathering invoice's lines (all in its currency)."""

    customer: Customer
    profile: BillingProfile
    gathering: Invoice
    lines: list[InvoiceLine]


# states a new draft can enter before it is saved: no step, or a step that needs nothing but the invoice in memory
# (the walk never stands in `draft.ready_to_issue`, whose edges read the invoice's lines)
UNSAVED_STATES = frozenset({
    S.DRAFT_WAITING_FOR_COLLECTION, S.DRAFT_COLLECTING, S.DRAFT_VALIDATING, S.DRAFT_SYNCING,
    S.DRAFT_MANUAL_APPROVAL_NEEDED, S.DRAFT_WAITING_AUTO_APPROVAL,
})


def _can_enter_unsaved(invoice: Invoice, to: S, *, valid: bool) -> bool:
    if to == S.DRAFT_COLLECTING:  # its step is skipped: the quantities were just taken after the collection time
        return snapshot_is_final(invoice)
    if to == S.DRAFT_VALIDATING:  # its step finds nothing
        return valid
    if to == S.DRAFT_SYNCING:
        return not is_remote(invoice.invoicing_app)
    return to in UNSAVED_STATES


def _walk_before_saving(invoice: Invoice, *, valid: bool, at: dt.datetime, actor: str) -> list[InvoiceEvent]:
    """The first moves `advance_until_stable` makes on a new draft, taken in memory with their audit rows, as far
    as they need neither the database nor a call out (an invalid draft stops before validating, so that the
    step records its issues; a draft synced by a remote app stops before syncing). `advance_until_stable` goes
    on from there once the invoice is saved."""
    events = []
    while (edge := state.edge_for(invoice, Trigger.NEXT, at)) is not None and _can_enter_unsaved(
            invoice, edge.to, valid=valid):
        events.append(InvoiceEvent(invoice_id=invoice.pk, from_status=invoice.status, to_status=edge.to,
                                   trigger=Trigger.NEXT, actor=actor, created_at=timezone.now()))
        invoice.status = edge.to
        if edge.to == S.DRAFT_SYNCING:
            invoice.app_sync_done = False
            put_sync_result(invoice, backend_for(invoice.invoicing_app).sync_draft(invoice))
    return events


def _complete_usage(plans: Sequence[DraftPlan], usage: Mapping[str, Usage] | None) -> Mapping[str, Usage]:
    """The caller's usage, plus one batched meter query per meter and period for lines it lacks."""
    usage = usage or {}
    missing = [line for plan in plans for line in plan.lines if line.pk not in usage]
    if not missing:
        return usage
    customers = {plan.customer.pk: plan.customer for plan in plans}
    return {**usage, **calculation.usage_for_lines(
        missing,
        customer_by_invoice={line.invoice_id: line.invoice.customer_id for line in missing},
        subjects_by_customer={pk: c.subject_keys() for pk, c in customers.items()},
    )}


def drafts_create(
    plans: Sequence[DraftPlan], *, now: dt.datetime, usage: Mapping[str, Usage] | None, actor: str
) -> list[Invoice]:
    """Standard invoices from gathering lines with a fixed number of statements however many invoices, lines and
    events (the period close makes a chunk of customers' invoices at once): quantities and totals, moved lines,
    detailed lines, audit rows, then numbers and invoices (see `_walk_before_saving` for the states taken in
    memory). The caller holds the customers' locks and then runs `advance_until_stable` on each invoice.

    The numbers come last: a profile's counter stays locked until the transaction ends (gap-free), so workers
    closing chunks of the same profile at once wait for each other only from there to their commit. Lines and audit
    rows point at the invoices before these are inserted: the foreign keys are checked at commit."""
    if not plans:
        return []
    invoices = []
    for plan in plans:
        invoice = new_invoice(plan.customer, plan.profile, currency=plan.gathering.currency, status=S.DRAFT_CREATED,
                              number="")
        invoice.period_start = min(line.period_start for line in plan.lines)
        invoice.period_end = max(line.period_end for line in plan.lines)
        invoice.created_at = now
        draft_timing(invoice, plan.lines)
        invoice.quantity_snapshotted_at = now
        for line in plan.lines:
            line.invoice = invoice
        invoices.append(invoice)
    usage = _complete_usage(plans, usage)
    lines = [line for plan in plans for line in plan.lines]
    calcs = calculation.calculate_lines(lines, usage)
    children = calculation.apply_line_calculations(calcs, timezone.now())
    totals = {c.line.pk: c.totals for c in calcs}
    features = features_by_key(line.feature_key for line in lines if line.feature_key)
    events = []
    for invoice, plan in zip(invoices, plans, strict=True):
        calculation.set_totals(invoice, sum_totals(totals[line.pk] for line in plan.lines))
        events.append(InvoiceEvent(invoice_id=invoice.pk, from_status="", to_status=invoice.status, trigger="create",
                                   actor="system"))
        events += _walk_before_saving(invoice, valid=not line_issues(plan.lines, features), at=now, actor=actor)
    calculation.store_moved_lines(lines, children)
    copy_insert(events)
    invoices_changed(invoices, created=True)
    unnumbered = [(invoice, plan) for invoice, plan in zip(invoices, plans, strict=True) if not invoice.number]
    numbers = numbering.draft_numbers([(plan.profile.pk, plan.customer.name) for _, plan in unnumbered])
    for (invoice, _), number in zip(unnumbered, numbers, strict=True):
        invoice.number = number
    copy_insert(invoices)
    return invoices


def invoice_pending_lines(
    *,
    customer_id: str,
    as_of: dt.datetime | None = None,
    line_ids: Sequence[str] | None = None,
    progressive_billing_override: bool | None = None,
    usage: Mapping[str, Usage] | None = None,
    actor: str = "api",
    at: dt.datetime | None = None,
) -> list[Invoice]:
    """Turn the customer's invoicable pending lines into standard invoices (one per currency), then advance them.
    `as_of` (default now, never later than now) is truncated to the second, the meters' resolution (upstream's
    `streaming.MinimumWindowSizeDuration`), so a progressively billed part ends at a whole second."""
    now = at or timezone.now()
    as_of = (min(as_of, now) if as_of else now).replace(microsecond=0)
    customer = customer_get(customer_id)
    with transaction.atomic():
        lock_customer(customer.pk)
        gathering = list(Invoice.objects.select_for_update().filter(
            customer=customer, status=S.GATHERING, deleted_at__isnull=True).order_by("currency"))
        lines = _eligible_lines(gathering, as_of, line_ids, progressive_billing_override)
        if not lines:
            raise InvalidInput(f"customer {customer_id} has no pending lines to invoice as of {as_of.isoformat()}")
        by_currency: dict[str, list[InvoiceLine]] = defaultdict(list)
        for line in lines:
            by_currency[line.currency].append(line)
        profile = profile_for_customer(customer)
        plans = [DraftPlan(customer, profile, g, by_currency[g.currency]) for g in gathering if g.currency in by_currency]
        invoices = drafts_create(plans, now=now, usage=usage, actor=actor)
        for g in gathering:
            refresh_gathering(g)
        for invoice in invoices:
            advance_until_stable(invoice, at=now, actor=actor, usage=usage, reported=True)
    return invoices


