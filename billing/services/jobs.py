"""The periodic billing jobs. Each is idempotent and safe with several workers: candidates are claimed with a
customer try-lock plus `SELECT … FOR UPDATE SKIP LOCKED`, and every unit of work is one transaction, so a crash
half-way and a rerun give the same invoices. Period close goes in batches of customers that workers close in
parallel, each batch claimed for its whole run (`locks.customers_claimed`) and closed a chunk per transaction.
"""

import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from django.db import DataError, transaction
from django.db.models import Q
from django.utils import timezone

from billing.events import invoices_changed
from billing.models import Invoice
from billing.models import InvoiceStatus as S
from billing.services import issuing, period_close, state
from billing.services.calculation import Usage
from billing.services.locks import customers_claimed, try_lock_customer
from billing.services.state import Trigger
from openmeter_site.core.errors import DomainError

logger = logging.getLogger(__name__)

# customers invoiced per transaction (`period_close`: a fixed number of statements per chunk); a chunk is
# all-or-nothing (a crash loses at most one chunk, which the next run redoes) and holds its customers' locks
CLOSE_CHUNK = 50
OVERDUE_FROM = (S.PAYMENT_PENDING, S.PAYMENT_AUTHORIZED, S.PAYMENT_FAILED, S.PAYMENT_ACTION_REQUIRED)


@dataclass(frozen=True)
class PeriodClose:
    customers: int  # candidate customers looked at (a full batch: more may be due)
    drafts: int  # draft invoices created
    failed: int = 0  # customers whose invoice could not be made (logged; they stay gathering and are retried)


def due_customer_batches(*, at: dt.datetime, size: int) -> Iterator[list[str]]:
    """Customers whose gathering invoice is due at `at`, in customer order, `size` at a time (read batch by
    batch, so a batch closed meanwhile does not shift the next)."""
    after = ""
    while True:
        batch = list(
            Invoice.objects.filter(status=S.GATHERING, deleted_at__isnull=True, collection_at__lte=at,
                                   customer_id__gt=after)
            .order_by("customer_id").values_list("customer_id", flat=True).distinct()[:size]
        )
        if not batch:
            return
        yield batch
        after = batch[-1]


def close_batch(customer_ids: Sequence[str], *, at: dt.datetime, chunk: int = CLOSE_CHUNK) -> PeriodClose:
    """Period close of one batch of customers: their usage in one batched meter query per meter and period, then
    their due lines invoiced, a chunk of customers per transaction. Several workers close batches in parallel:
    a customer another worker's batch holds is left to it."""
    drafts = failed = 0
    with customers_claimed("close", customer_ids) as claimed:
        if claimed:
            usage = period_close.batched_usage(claimed, at)
            for i in range(0, len(claimed), chunk):
                part = claimed[i : i + chunk]
                try:
                    with transaction.atomic():
                        drafts += len(period_close.close_customers(part, at=at, usage=usage, actor="job:collect"))
                except (DomainError, DataError):
                    made, failed_here = _close_one_by_one(part, at=at, usage=usage)
                    drafts, failed = drafts + made, failed + failed_here
    return PeriodClose(customers=len(customer_ids), drafts=drafts, failed=failed)


def _close_one_by_one(
    customer_ids: Sequence[str], *, at: dt.datetime, usage: Mapping[str, Usage]
) -> tuple[int, int]:
    """A chunk that one customer's invoice cannot be made for (e.g. a total its columns cannot hold) is closed
    customer by customer, so the others get their drafts; the failing customer stays gathering, logged, and is
    tried again on the next run. Returns (drafts made, customers failed)."""
    made = failed = 0
    for customer_id in customer_ids:
        try:
            with transaction.atomic():
                made += len(period_close.close_customers([customer_id], at=at, usage=usage, actor="job:collect"))
        except (DomainError, DataError):
            failed += 1
            logger.exception("period close: the invoice of customer %s could not be made", customer_id)
    return made, failed


def collect_gathering_invoices(
    *, at: dt.datetime | None = None, limit: int = 500, chunk: int = CLOSE_CHUNK
) -> PeriodClose:
    """Period close of the first `limit` customers whose gathering invoice is due: their due lines are invoiced
    (no progressive split). The scheduled job hands the further batches to other workers
    (`billing.tasks.collect_gathering_invoices_task`)."""
    at = at or timezone.now()
    first = next(due_customer_batches(at=at, size=limit), [])
    return close_batch(first, at=at, chunk=chunk)


def _claim(invoice_id: str, customer_id: str) -> Invoice | None:
    if not try_lock_customer(customer_id):
        return None
    return Invoice.objects.select_for_update(skip_locked=True).select_related("invoicing_app").filter(
        pk=invoice_id).first()


def advance_due_invoices(*, at: dt.datetime | None = None, limit: int = 500) -> int:
    """Auto-advance: drafts whose collection time or draft period has passed move on (and issue)."""
    at = at or timezone.now()
    due = list(
        Invoice.objects.filter(deleted_at__isnull=True).filter(
            Q(status=S.DRAFT_WAITING_FOR_COLLECTION, collection_at__lte=at)
            | Q(status=S.DRAFT_WAITING_AUTO_APPROVAL, draft_until__lte=at)
        ).order_by("pk").values_list("pk", "customer_id")[:limit]
    )
    for invoice_id, customer_id in due:
        try:
            with transaction.atomic():
                invoice = _claim(invoice_id, customer_id)
                if invoice is None or state.edge_for(invoice, Trigger.NEXT, at) is None:
                    continue  # claimed or already advanced by another worker
                issuing.advance_until_stable(invoice, at=at, actor="job:advance")
        except DomainError as exc:  # e.g. invalid stored workflow settings: the others still advance
            logger.error("advancing invoice %s failed: %s", invoice_id, exc.detail)
        except DataError:  # e.g. a re-metered quantity past what the columns hold: the others still advance
            logger.exception("advancing invoice %s failed", invoice_id)
    return len(due)


def mark_overdue_invoices(*, at: dt.datetime | None = None, limit: int = 500) -> int:
    """Issued invoices still unpaid after their due date become overdue."""
    at = at or timezone.now()
    due = list(
        Invoice.objects.filter(status__in=OVERDUE_FROM, due_at__lt=at, deleted_at__isnull=True)
        .order_by("pk").values_list("pk", "customer_id")[:limit]
    )
    for invoice_id, customer_id in due:
        with transaction.atomic():
            invoice = _claim(invoice_id, customer_id)
            if invoice is None or invoice.status not in OVERDUE_FROM:
                continue
            issuing.fire(invoice, Trigger.PAYMENT_OVERDUE, at=at, actor="job:overdue")
            invoices_changed([invoice])
    return len(due)
