"""Period close (HOT PATH): gathering lines whose period ended become draft invoices, a chunk of customers at a
time, with a fixed number of statements per chunk whatever its invoices, lines and events: batched usage, one
claim of the chunk's customers, bulk writes of invoices, lines, detailed lines, audit rows and gathering invoices
(`drafts.drafts_create`). Only a remote invoicing app's steps (Stripe's draft sync) run per invoice.

The caller wraps each chunk in one transaction: a crash half-way leaves nothing of it behind and a rerun makes the
same invoices; a customer another worker holds is skipped (its next run picks it up).
"""

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence

from billing.models import BillingProfile, Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import calculation, drafts, issuing
from billing.services.drafts import DraftPlan
from billing.services.gathering import GatheringRow, refresh_gathering_many
from billing.services.locks import try_lock_customers
from billing.services.profiles import profiles_for_customers
from billing.services.workflow import WorkflowInvalid, stored_workflow_check
from customers.models import Customer, CustomerSubject
from openmeter_site.core.errors import DomainError

logger = logging.getLogger(__name__)


def _subjects_by_customer(customer_ids: Sequence[str]) -> dict[str, list[str]]:
    """Usage attribution for many customers in one query (subject keys plus the customer key)."""
    out: dict[str, list[str]] = {c: [] for c in customer_ids}
    for customer_id, key in CustomerSubject.objects.filter(
        customer_id__in=customer_ids, deleted_at__isnull=True
    ).values_list("customer_id", "subject_key"):
        out[customer_id].append(key)
    for customer_id, customer_key in Customer.objects.filter(pk__in=customer_ids).values_list("pk", "key"):
        if customer_key and customer_key not in out[customer_id]:
            out[customer_id].append(customer_key)
    return out


# what `calculation.usage_for_lines` reads of a line, and what picks the due ones (a chunk reads its lines whole)
USAGE_FIELDS = ("id", "invoice_id", "parent_id", "deleted_at", "invoice_at", "price", "feature_key", "period_start",
                "period_end", "split_group_start")


def batched_usage(customer_ids: Sequence[str], at: dt.datetime) -> dict[str, calculation.Usage]:
    """Quantities of every due gathering line of these customers: one meter query per (meter, period, filters).

    A gathering invoice that another worker or the API closes after this read is only metered for nothing
    (`close_customers` finds it gone and skips the customer). Lines are read by their invoices alone and picked
    here: with any other condition in the statement a planner without statistics takes an index on it (e.g. on
    `parent_id IS NULL`) and reads every gathering line of every customer for each batch."""
    customer_by_invoice = dict(Invoice.objects.filter(
        customer_id__in=customer_ids, status=S.GATHERING, deleted_at__isnull=True).values_list("pk", "customer_id"))
    lines = [
        line for line in InvoiceLine.objects.filter(invoice_id__in=list(customer_by_invoice)).only(*USAGE_FIELDS)
        if line.parent_id is None and line.deleted_at is None and line.invoice_at <= at
    ]
    return calculation.usage_for_lines(
        lines, customer_by_invoice=customer_by_invoice, subjects_by_customer=_subjects_by_customer(customer_ids)
    )


def _plans(
    gathering: Sequence[Invoice], lines: Sequence[InvoiceLine], customers: Mapping[str, Customer], as_of: dt.datetime
) -> list[DraftPlan]:
    """One draft per customer and currency with due lines, in customer then currency order (numbers follow it)."""
    due: dict[tuple[str, str], list[InvoiceLine]] = defaultdict(list)
    customer_of = {g.pk: g.customer_id for g in gathering}
    for line in lines:
        if line.deleted_at is None and line.invoice_at <= as_of:
            due[(customer_of[line.invoice_id], line.currency)].append(line)
    profiles = _usable(profiles_for_customers({customer for customer, _ in due}))
    return [
        DraftPlan(customers[g.customer_id], profiles[g.customer_id], g, due[(g.customer_id, g.currency)])
        for g in gathering if due.get((g.customer_id, g.currency)) and g.customer_id in profiles
    ]


def _usable(profiles: Mapping[str, BillingProfile]) -> dict[str, BillingProfile]:
    """Customers whose profile has invalid stored workflow settings wait (logged) until they are corrected."""
    invalid: dict[str, str] = {}
    for profile in {p.pk: p for p in profiles.values()}.values():  # each profile once: a chunk often shares one
        try:
            stored_workflow_check(profile.workflow, owner=f"billing profile {profile.pk}")
        except WorkflowInvalid as exc:
            invalid[profile.pk] = exc.detail
    for customer_id, profile in profiles.items():
        if profile.pk in invalid:
            logger.error("not invoicing customer %s: %s", customer_id, invalid[profile.pk])
    return {c: p for c, p in profiles.items() if p.pk not in invalid}


def close_customers(
    customer_ids: Sequence[str], *, at: dt.datetime, usage: Mapping[str, calculation.Usage], actor: str
) -> list[Invoice]:
    """Invoice the due gathering lines of these customers (no progressive split), inside the caller's transaction.
    `usage` may lack lines (added since it was read): those are metered here, in one batch."""
    as_of = at.replace(microsecond=0)  # the meters' resolution: a second
    locked = try_lock_customers(customer_ids)
    customers = {c.pk: c for c in Customer.objects.filter(pk__in=locked, deleted_at__isnull=True)
                 .prefetch_related("subjects")}
    for missing in sorted(set(locked) - customers.keys()):
        logger.error("collecting the gathering invoice of customer %s failed: customer not found", missing)
    gathering = list(Invoice.objects.select_for_update().filter(
        customer_id__in=list(customers), status=S.GATHERING, deleted_at__isnull=True).order_by("customer_id", "currency"))
    if not gathering:
        return []
    # read by their invoices alone, as in `batched_usage`
    lines = [line for line in InvoiceLine.objects.filter(invoice__in=gathering).order_by("period_start", "created_at", "id")
             if line.parent_id is None]
    invoices = drafts.drafts_create(_plans(gathering, lines, customers, as_of), now=at, usage=usage, actor=actor)
    # what is left on each gathering invoice: the lines not moved to a draft (deleted ones included)
    left: dict[str, list[GatheringRow]] = {g.pk: [] for g in gathering}
    for line in lines:
        if line.invoice_id in left:
            left[line.invoice_id].append((line.period_start, line.period_end, line.invoice_at, line.deleted_at))
    refresh_gathering_many([(g, left[g.pk]) for g in gathering])
    for invoice in invoices:
        try:
            issuing.advance_until_stable(invoice, at=at, actor=actor, usage=usage, reported=True)
        except DomainError:  # the draft stays where the error stopped it; its next action retries
            logger.exception("advancing the new invoice %s of customer %s failed", invoice.pk, invoice.customer_id)
    return invoices
