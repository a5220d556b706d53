"""Read queries shared by the API, the admin and the jobs."""

import datetime as dt
from collections.abc import Sequence

from django.db.models import Q, QuerySet

from billing.models import Invoice, InvoiceLine


def invoice_list_qs(
    *,
    statuses: Sequence[str] = (),
    extended_statuses: Sequence[str] = (),
    customer_ids: Sequence[str] = (),
    include_deleted: bool = False,
    issued_after: dt.datetime | None = None,
    issued_before: dt.datetime | None = None,
    period_start_after: dt.datetime | None = None,
    period_start_before: dt.datetime | None = None,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
) -> QuerySet[Invoice]:
    qs = Invoice.objects.all()
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    if statuses:
        exact = [s for s in statuses if s in {"gathering", "issued", "paid", "overdue", "uncollectible", "voided"}]
        prefixes = [s for s in statuses if s not in exact]
        cond = Q(status__in=exact)
        for p in prefixes:
            cond |= Q(status__startswith=f"{p}.")
        qs = qs.filter(cond)
    if extended_statuses:
        qs = qs.filter(status__in=extended_statuses)
    if customer_ids:
        qs = qs.filter(customer_id__in=customer_ids)
    for field, op, value in (
        ("issued_at", "gte", issued_after), ("issued_at", "lte", issued_before),
        ("period_start", "gte", period_start_after), ("period_start", "lte", period_start_before),
        ("created_at", "gte", created_after), ("created_at", "lte", created_before),
    ):
        if value is not None:
            qs = qs.filter(**{f"{field}__{op}": value})
    return qs

def invoice_lines(invoice: Invoice, *, include_deleted: bool = False) -> list[InvoiceLine]:
    """Top-level and detailed lines of an invoice in display order (one query)."""
    qs = InvoiceLine.objects.filter(invoice=invoice)
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    return list(qs.order_by("parent_id", "index", "created_at", "id"))

def lines_by_invoice(invoice_ids: Sequence[str]) -> dict[str, list[InvoiceLine]]:
    out: dict[str, list[InvoiceLine]] = {i: [] for i in invoice_ids}
    rows = InvoiceLine.objects.filter(invoice_id__in=invoice_ids, deleted_at__isnull=True).order_by(
        "parent_id", "index", "created_at", "id")
    for line in rows:
        out[line.invoice_id].append(line)
    return out
