"""The periodic billing jobs. Each is idempotent and safe with several workers: candidates are claimed with a
customer try-lock plus `SELECT … FOR UPDATE SKIP LOCKED`, and every unit of work is one transaction, so a crash
half-way and a rerun give the same invoices.
"""

import datetime as dt
import logging
from collections.abc import Sequence

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import calculation, invoicing, state
from billing.services.locks import try_lock_customer
from billing.services.state import Trigger
from customers.models import CustomerSubject
from openmeter_site.core.errors import DomainError, InvalidInput

logger = logging.getLogger(__name__)

OVERDUE_FROM = (S.PAYMENT_PENDING, S.PAYMENT_AUTHORIZED, S.PAYMENT_FAILED, S.PAYMENT_ACTION_REQUIRED)


def _subjects_by_customer(customer_ids: Sequence[str]) -> dict[str, list[str]]:
    """Usage attribution for many customers in one query (subject keys plus the customer key)."""
    from customers.models import Customer

    out: dict[str, list[str]] = {c: [] for c in customer_ids}
    for customer_id, key in CustomerSubject.objects.filter(
        customer_id__in=customer_ids, deleted_at__isnull=True
    ).values_list("customer_id", "subject_key"):
        out[customer_id].append(key)
    for customer_id, key in Customer.objects.filter(pk__in=customer_ids).values_list("pk", "key"):
        if key and key not in out[customer_id]:
            out[customer_id].append(key)
    return out


def _batched_usage(customer_ids: Sequence[str], at: dt.datetime) -> dict[str, calculation.Usage]:
    """Quantities of every due gathering line of these customers: one meter query per (meter, period, filters)."""
    lines = list(InvoiceLine.objects.filter(
        invoice__customer_id__in=customer_ids, invoice__status=S.GATHERING, invoice__deleted_at__isnull=True,
        parent__isnull=True, deleted_at__isnull=True, invoice_at__lte=at,
    ))
    customer_by_invoice = dict(Invoice.objects.filter(pk__in={line.invoice_id for line in lines})
                               .values_list("pk", "customer_id"))
    return calculation.usage_for_lines(
        lines, customer_by_invoice=customer_by_invoice, subjects_by_customer=_subjects_by_customer(customer_ids)
    )


def collect_gathering_invoices(*, at: dt.datetime | None = None, limit: int = 500) -> int:
    """Period close: customers whose gathering invoice is due get their due lines invoiced (no progressive
    split). Returns the number of candidate customers looked at."""
    at = at or timezone.now()
    customer_ids = list(
        Invoice.objects.filter(status=S.GATHERING, deleted_at__isnull=True, collection_at__lte=at)
        .order_by("customer_id").values_list("customer_id", flat=True).distinct()[:limit]
    )
    if not customer_ids:
        return 0
    usage = _batched_usage(customer_ids, at)
    for customer_id in customer_ids:
        with transaction.atomic():
            if not try_lock_customer(customer_id):
                continue  # another worker is on it
            try:
                invoicing.invoice_pending_lines(
                    customer_id=customer_id, as_of=at, at=at, progressive_billing_override=False, usage=usage,
                    actor="job:collect",
                )
            except InvalidInput:
                invoicing.refresh_gathering_for_customer(customer_id)  # nothing due after all: move the clock on
            except DomainError:
                logger.exception("collecting the gathering invoice of customer %s failed", customer_id)
    return len(customer_ids)


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
        with transaction.atomic():
            invoice = _claim(invoice_id, customer_id)
            if invoice is None or state.edge_for(invoice, Trigger.NEXT, at) is None:
                continue  # claimed or already advanced by another worker
            invoicing.advance_until_stable(invoice, at=at, actor="job:advance")
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
            invoicing.fire(invoice, Trigger.PAYMENT_OVERDUE, at=at, actor="job:overdue")
    return len(due)
