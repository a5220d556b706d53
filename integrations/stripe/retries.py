"""Invoices whose Stripe sync failed are retried with exponential backoff.

Within one call the `stripe` library already retries network errors, rate limits and 5xx (with backoff and the same
idempotency key). When Stripe stays unavailable, billing moves the invoice to `draft.sync_failed` or
`issuing.failed`; this job retries it after 1, 2, 4, ... minutes (capped at 6 hours), at most `MAX_ATTEMPTS` times,
after which it waits for a person (the admin's retry action). Retrying is billing's `retry` action, which takes the
customer lock, so two workers cannot retry one invoice twice; the sync itself is idempotent.
"""

import datetime as dt
import logging

from django.db.models import Max
from django.utils import timezone

from integrations.models import AppType
from openmeter_site.core.errors import DomainError

logger = logging.getLogger(__name__)

BASE_DELAY = dt.timedelta(minutes=1)
MAX_DELAY = dt.timedelta(hours=6)
MAX_ATTEMPTS = 8


def retry_delay(failures: int) -> dt.timedelta:
    """1 min after the first failure, doubling: 1, 2, 4, ... minutes, at most 6 hours."""
    return min(BASE_DELAY * 2 ** max(failures - 1, 0), MAX_DELAY)


def stripe_syncs_failed() -> int:
    """Invoices on a Stripe app whose draft or issuing sync failed (the ones this job retries)."""
    from billing.models import Invoice, InvoiceStatus

    return Invoice.objects.filter(
        status__in=[InvoiceStatus.DRAFT_SYNC_FAILED, InvoiceStatus.ISSUING_FAILED],
        invoicing_app__type=AppType.STRIPE,
        deleted_at__isnull=True,
    ).count()


def stripe_sync_retry_due(*, at: dt.datetime | None = None, limit: int = 100) -> int:
    """Retry the failed Stripe syncs whose backoff has elapsed; returns how many were retried."""
    from billing.models import InvoiceEvent, InvoiceStatus
    from billing.services import invoice_retry

    at = at or timezone.now()
    failed_statuses = [InvoiceStatus.DRAFT_SYNC_FAILED, InvoiceStatus.ISSUING_FAILED]
    rows = (
        InvoiceEvent.objects.filter(
            to_status__in=failed_statuses,
            invoice__status__in=failed_statuses,
            invoice__invoicing_app__type=AppType.STRIPE,
            invoice__deleted_at__isnull=True,
        )
        .values("invoice_id", "invoice__status", "to_status")
        .annotate(last_failure=Max("created_at"))
        .order_by("invoice_id")
    )
    retried = 0
    for row in rows:
        if row["to_status"] != row["invoice__status"]:
            continue
        failures = InvoiceEvent.objects.filter(invoice_id=row["invoice_id"], to_status=row["to_status"]).count()
        if failures > MAX_ATTEMPTS or at < row["last_failure"] + retry_delay(failures):
            continue
        try:
            invoice_retry(invoice_id=row["invoice_id"], at=at, actor="stripe-sync-retry")
        except DomainError as exc:  # another worker retried it first, or it moved on
            logger.info("retry of invoice %s skipped: %s", row["invoice_id"], exc.detail)
            continue
        retried += 1
        if retried >= limit:
            break
    return retried
