"""Invoices: gathering (pending) lines, turning them into standard invoices, and driving invoices through the
state machine in `state.py` (the steps that run when a state is entered live here).

Every public function takes the customer lock, then the invoice row lock, in that order (no deadlocks), and runs
in one transaction: a crash half-way leaves nothing behind, a rerun gives the same invoices.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from billing.events import invoices_changed
from billing.models import BillingProfile, Invoice, InvoiceEvent, InvoiceLine, LineManagedBy
from billing.models import InvoiceStatus as S
from billing.plugins import SyncResult, backend_for, is_remote
from billing.services import calculation, numbering, state
from billing.services.calculation import Usage, features_by_key, is_flat
from billing.services.locks import lock_customer
from billing.services.pricing import Price, PriceError, parse_price, sum_totals
from billing.services.profiles import profile_for_customer
from billing.services.progressive import split_at, splittable_at
from billing.services.state import Trigger
from billing.services.workflow import add_duration, next_collection_at, stored_workflow_check
from customers.models import Customer
from openmeter_site.core.broker import kick_on_commit
from openmeter_site.core.errors import InvalidInput, NotFound
from openmeter_site.core.ids import new_id
from openmeter_site.core.money import is_currency

ZERO = Decimal(0)
MAX_ADVANCE_STEPS = 50


# --- snapshots ----------------------------------------------------------------------------------------------

def customer_party(customer: Customer) -> dict[str, Any]:
    party: dict[str, Any] = {
        "id": customer.pk,
        "name": customer.name,
        "usageAttribution": {"subjectKeys": customer.subject_keys()},
    }
    if customer.key:
        party["key"] = customer.key
    if customer.billing_address:
        party["addresses"] = [customer.billing_address]
    return party


def _new_invoice(customer: Customer, profile: BillingProfile, *, currency: str, status: S, number: str) -> Invoice:
    """An unsaved invoice with the profile's snapshots (apps attached, so the state machine needs no lookups)."""
    stored_workflow_check(profile.workflow, owner=f"billing profile {profile.pk}")
    return Invoice(
        customer=customer,
        billing_profile=profile,
        status=status,
        number=number,
        currency=currency,
        supplier=profile.supplier,
        customer_snapshot=customer_party(customer),
        workflow=profile.workflow,
        tax_app=profile.tax_app,
        invoicing_app=profile.invoicing_app,
        payment_app=profile.payment_app,
    )


def customer_get(customer_id: str) -> Customer:
    customer = Customer.objects.filter(pk=customer_id, deleted_at__isnull=True).first()
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def gathering_invoice_get_or_create(customer: Customer, currency: str) -> tuple[Invoice, bool]:
    """The customer's gathering invoice for a currency (caller holds the customer lock)."""
    existing = Invoice.objects.filter(
        customer=customer, currency=currency, status=S.GATHERING, deleted_at__isnull=True
    ).first()
    if existing is not None:
        return existing, False
    profile = profile_for_customer(customer)
    number = numbering.gathering_number(profile_id=profile.pk, customer_name=customer.name, currency=currency)
    invoice = _new_invoice(customer, profile, currency=currency, status=S.GATHERING, number=number)
    invoice.save(force_insert=True)
    return invoice, True


GATHERING_REFRESH_FIELDS = ["period_start", "period_end", "collection_at", "updated_at"]
GatheringRow = tuple[dt.datetime, dt.datetime, dt.datetime, dt.datetime | None]  # start, end, invoice_at, deleted_at


def _gathering_refreshed(invoice: Invoice, rows: Sequence[GatheringRow]) -> bool:
    """Put the period and next collection time from the remaining top-level lines on the invoice (in memory);
    False when no line is left at all: the invoice is to be removed (it is a staging area with no history of its
    own: its lines moved to standard invoices)."""
    lines = [(s, e, a) for s, e, a, deleted in rows if deleted is None]
    if not lines:
        invoice.collection_at = None  # only deleted lines left: kept for history, nothing to collect
        return bool(rows)
    invoice.period_start = min(s for s, _, _ in lines)
    invoice.period_end = max(e for _, e, _ in lines)
    # collect once the earliest line is due and the grace period for late events has passed
    invoice.collection_at = next_collection_at(invoice.workflow, min(a for _, _, a in lines))
    return True


def _delete_empty_gathering(invoice_ids: Sequence[str]) -> None:
    """Nothing refers to an empty gathering invoice (no lines, no events): one plain DELETE."""
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {Invoice._meta.db_table} WHERE id = ANY(%s)", [list(invoice_ids)])


def refresh_gathering(invoice: Invoice) -> None:
    """Period and next collection time from the remaining lines; an emptied gathering invoice is removed."""
    rows = list(invoice.all_lines.filter(parent__isnull=True).values_list("period_start", "period_end", "invoice_at",
                                                                          "deleted_at"))
    if not _gathering_refreshed(invoice, rows):
        _delete_empty_gathering([invoice.pk])
        return
    invoice.save(update_fields=GATHERING_REFRESH_FIELDS)


def refresh_gathering_many(rows_by_invoice: Sequence[tuple[Invoice, Sequence[GatheringRow]]]) -> None:
    """`refresh_gathering` for many invoices whose remaining lines the caller has read: two statements."""
    now = timezone.now()
    kept, emptied = [], []
    for invoice, rows in rows_by_invoice:
        if _gathering_refreshed(invoice, rows):
            invoice.updated_at = now
            kept.append(invoice)
        else:
            emptied.append(invoice.pk)
    if emptied:
        _delete_empty_gathering(emptied)
    if kept:
        Invoice.objects.bulk_update(kept, GATHERING_REFRESH_FIELDS)


# --- pending lines ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineInput:
    name: str
    period_start: dt.datetime
    period_end: dt.datetime
    invoice_at: dt.datetime
    price: dict[str, Any]
    feature_key: str | None = None
    tax_config: dict[str, Any] | None = None
    discounts: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    managed_by: str = LineManagedBy.MANUAL
    line_id: str | None = None
    sync_key: str | None = None
    subscription: Mapping[str, Any] | None = None


def validate_price(line: LineInput, where: str) -> Price:
    """The line's price, parsed; a usage discount on a flat price is refused (upstream's
    `ErrUsageDiscountWithFlatPrice`: a flat fee has no usage to take free units from)."""
    try:
        price = parse_price(line.price)
    except (PriceError, KeyError, ArithmeticError) as exc:
        raise InvalidInput(f"{where}.price: {exc}") from exc
    if price.type == "flat" and (line.discounts or {}).get("usage"):
        raise InvalidInput(f"{where}.rateCard.discounts.usage: usage discount is not supported for flat price")
    return price


def validate_lines(lines: Sequence[LineInput], *, field: str = "lines") -> None:
    """Reject lines that could not be rated: a 400 naming the line, before anything is written."""
    features = features_by_key(line.feature_key for line in lines if line.feature_key)
    for i, line in enumerate(lines):
        where = f"{field}[{i}]"
        if line.period_start >= line.period_end:
            raise InvalidInput(f"{where}.period: from must be before to")
        price = validate_price(line, where)
        if price.type != "flat":
            if not line.feature_key:
                raise InvalidInput(f"{where}.featureKey: required for a {price.type} price (usage is metered)")
            feature = features.get(line.feature_key)
            if feature is None or feature.meter is None:
                raise InvalidInput(f"{where}.featureKey: feature {line.feature_key!r} not found or has no meter")


def line_from_input(invoice: Invoice, line: LineInput, currency: str) -> InvoiceLine:
    sub = line.subscription or {}
    return InvoiceLine(
        id=line.line_id or new_id(),
        invoice=invoice,
        managed_by=line.managed_by,
        name=line.name,
        description=line.description,
        metadata=line.metadata or {},
        currency=currency,
        period_start=line.period_start,
        period_end=line.period_end,
        invoice_at=line.invoice_at,
        price=line.price,
        feature_key=line.feature_key,
        tax_config=line.tax_config,
        rate_card_discounts=line.discounts,
        quantity=Decimal(1) if line.price.get("type") == "flat" else None,
        sync_key=line.sync_key,
        subscription_id=sub.get("subscription_id"),
        subscription_phase_id=sub.get("phase_id"),
        subscription_item_id=sub.get("item_id"),
        subscription_billing_period_start=sub.get("billing_period_start"),
        subscription_billing_period_end=sub.get("billing_period_end"),
    )


@dataclass(frozen=True)
class PendingLinesResult:
    lines: list[InvoiceLine]
    invoice: Invoice
    is_invoice_new: bool


def pending_lines_create(*, customer_id: str, currency: str, lines: Sequence[LineInput]) -> PendingLinesResult:
    """`createLineItems`: add lines to the customer's gathering invoice for the currency."""
    if not is_currency(currency):
        raise InvalidInput(f"currency: unknown currency {currency!r}")
    if not lines:
        raise InvalidInput("lines: at least one line is required")
    customer = customer_get(customer_id)
    validate_lines(lines)
    with transaction.atomic():
        lock_customer(customer.pk)
        invoice, is_new = gathering_invoice_get_or_create(customer, currency)
        rows = InvoiceLine.objects.bulk_create([line_from_input(invoice, line, currency) for line in lines])
        refresh_gathering(invoice)
    return PendingLinesResult(rows, invoice, is_new)


# --- gathering → standard invoices --------------------------------------------------------------------------

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


def _draft_timing(invoice: Invoice, lines: Sequence[InvoiceLine], now: dt.datetime) -> None:
    workflow = invoice.workflow
    metered = [line.invoice_at for line in lines if not is_flat(line)]
    invoice.collection_at = add_duration(max(metered), workflow["collection"]["interval"]) if metered else now
    if workflow["invoicing"]["autoAdvance"]:
        base = max(invoice.collection_at, now)
        invoice.draft_until = add_duration(base, workflow["invoicing"]["draftPeriod"])
        invoice.due_at = add_duration(invoice.draft_until, workflow["invoicing"]["dueAfter"]).replace(microsecond=0)
    else:
        invoice.draft_until = None
        invoice.due_at = None


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
            _put_sync_result(invoice, backend_for(invoice.invoicing_app).sync_draft(invoice))
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
    events (the period close makes a chunk of customers' invoices at once): numbers, invoices with their
    quantities and totals, moved lines, detailed lines and audit rows (see `_walk_before_saving`). The caller
    holds the customers' locks and then runs `advance_until_stable` on each invoice."""
    if not plans:
        return []
    numbers = numbering.draft_numbers([(plan.profile.pk, plan.customer.name) for plan in plans])
    invoices = []
    for plan, number in zip(plans, numbers, strict=True):
        invoice = _new_invoice(plan.customer, plan.profile, currency=plan.gathering.currency, status=S.DRAFT_CREATED,
                               number=number)
        invoice.period_start = min(line.period_start for line in plan.lines)
        invoice.period_end = max(line.period_end for line in plan.lines)
        _draft_timing(invoice, plan.lines, now)
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
        events += _walk_before_saving(invoice, valid=not _line_issues(plan.lines, features), at=now, actor=actor)
    Invoice.objects.bulk_create(invoices, batch_size=500)
    calculation.store_moved_lines(lines, children)
    InvoiceEvent.objects.bulk_create(events, batch_size=1000)
    invoices_changed(invoices, created=True)
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
    `as_of` (default now, never later than now) is truncated to the minute, as meters bucket by minute."""
    now = at or timezone.now()
    as_of = min(as_of, now).replace(second=0, microsecond=0) if as_of else now
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


# --- steps run when a state is entered ------------------------------------------------------------------------

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
    """Quantities taken after the collection time (end of the grace period for late events) are final."""
    return invoice.quantity_snapshotted_at is not None and invoice.collection_at is not None \
        and invoice.quantity_snapshotted_at >= invoice.collection_at


def _step_collect(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    _snapshot(invoice, _lines(invoice), at, usage)


def _step_recalculate(invoice: Invoice, at: dt.datetime, usage: Mapping[str, Usage] | None) -> None:
    lines = _lines(invoice)
    _draft_timing(invoice, lines, at)
    invoice.save(update_fields=["collection_at", "draft_until", "due_at", "updated_at"])
    _snapshot(invoice, lines, at, usage)


def _line_issues(lines: Sequence[InvoiceLine], features: Mapping[str, Any]) -> list[tuple[str, str]]:
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
    issues = _line_issues(lines, features_by_key(line.feature_key for line in lines if line.feature_key))
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


def _put_sync_result(invoice: Invoice, result: SyncResult) -> None:
    invoice.app_sync_done = result.done
    if result.external_id:
        invoice.external_ids = {**invoice.external_ids, "invoicing": result.external_id}
    if result.invoice_number:
        invoice.number = result.invoice_number


def apply_sync(invoice: Invoice, result: SyncResult) -> None:
    _put_sync_result(invoice, result)
    invoice.save(update_fields=["app_sync_done", "external_ids", "number", "updated_at"])
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


# --- actions ----------------------------------------------------------------------------------------------

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
