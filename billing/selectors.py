"""Read queries shared by the API, the admin and the jobs."""

import datetime as dt
from collections.abc import Sequence

from django.db.models import Min, Q
from django.db.models.functions import Coalesce, Least

from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S


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


# invoices an operator has to act on: key → (what the dashboard says, the statuses)
NEEDS_ACTION: dict[str, tuple[str, tuple[str, ...]]] = {
    "approval": ("drafts waiting for approval", (S.DRAFT_MANUAL_APPROVAL_NEEDED,)),
    "invalid": ("drafts with errors", (S.DRAFT_INVALID,)),
    "sync_failed": ("sync with the invoicing app failed", (S.DRAFT_SYNC_FAILED,)),
    "issuing_failed": ("issuing failed", (S.ISSUING_LINE_FINALIZATION_FAILED, S.ISSUING_FAILED,
                                          S.ISSUING_CHARGE_BOOKING_FAILED)),
    "payment_failed": ("payment failed or needs action", (
        S.PAYMENT_FAILED, S.PAYMENT_ACTION_REQUIRED, S.PAYMENT_BOOKING_AUTHORIZED_FAILED,
        S.PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED_FAILED, S.PAYMENT_BOOKING_SETTLED_FAILED)),
    "delete_failed": ("deleting failed", (S.DELETE_FAILED,)),
}

# issued and not paid yet: what customers owe
OWED_STATUSES: tuple[str, ...] = (
    S.ISSUED, S.PAYMENT_PENDING, S.PAYMENT_AUTHORIZED, S.PAYMENT_FAILED, S.PAYMENT_ACTION_REQUIRED,
    S.PAYMENT_BOOKING_AUTHORIZED, S.PAYMENT_BOOKING_AUTHORIZED_FAILED, S.PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED,
    S.PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED_FAILED, S.PAYMENT_BOOKING_SETTLED, S.PAYMENT_BOOKING_SETTLED_FAILED,
    S.OVERDUE,
)


def overdue_q(now: dt.datetime) -> Q:
    """Of the owed invoices, those past their due date (the overdue job marks them within 15 minutes)."""
    return Q(status=S.OVERDUE) | Q(due_at__lt=now)


def usage_needed_since() -> dt.datetime | None:
    """The start of the earliest line period on an invoice not issued yet (gathering, draft or issuing), or of its
    split group when it is billed progressively (its usage before the line's period prices the line): metering
    keeps every event from then on (`metering.retention`), since the line's usage may still be read from them."""
    unissued = [s.value for s in S if s.value == S.GATHERING or s.value.startswith(("draft.", "issuing."))]
    return InvoiceLine.objects.filter(
        invoice__status__in=unissued, invoice__deleted_at__isnull=True, deleted_at__isnull=True
    ).aggregate(start=Min(Least("period_start", Coalesce("split_group_start", "period_start"))))["start"]
