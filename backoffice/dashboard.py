"""The back office's front page: what a billing person checks first. Billed revenue per month and currency, what is
owed and overdue, the invoices that need someone, failed webhook deliveries, events not yet folded into the meters,
whether the job queue (Redis) answers, and how each scheduled job last ran. A fixed number of queries, whatever the
data size."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import redis
from dateutil.relativedelta import relativedelta
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from billing.models import Invoice, InvoiceType
from billing.models import InvoiceStatus as S
from billing.selectors import NEEDS_ACTION, OWED_STATUSES, overdue_q
from metering.selectors import fold_backlog
from notifications.models import DeliveryState, NotificationDelivery
from openmeter_site.core.jobs import with_last_run
from openmeter_site.ops.probes import redis_problem
from openmeter_site.outbox.selectors import outbox_backlog

MONTHS = 12
# invoices the customer was billed: issued, whatever happened to the payment since, unless voided
BILLED = Q(issued_at__isnull=False) & ~Q(status__in=(S.VOIDED, S.DELETED)) & Q(type=InvoiceType.STANDARD,
                                                                              deleted_at__isnull=True)


@dataclass(frozen=True)
class Revenue:
    currency: str
    months: list[tuple[dt.date, Decimal]]  # the last 12 months, oldest first, months without invoices at 0


@dataclass(frozen=True)
class Owed:
    currency: str
    outstanding: Decimal
    outstanding_count: int
    overdue: Decimal
    overdue_count: int


@dataclass(frozen=True)
class Attention:
    label: str
    count: int
    url: str


@dataclass(frozen=True)
class Dashboard:
    revenue: list[Revenue]
    owed: list[Owed]
    attention: list[Attention]
    webhooks_failed: int
    fold_waiting: int
    fold_oldest_seconds: float
    outbox_waiting: int
    outbox_oldest_seconds: float
    job_queue_down: str | None  # why Redis did not answer, or None
    jobs: list[PeriodicTask]  # annotated with their last run (`openmeter_site.core.admin.with_last_run`)


def month_starts(today: dt.date, count: int = MONTHS) -> list[dt.date]:
    first = today.replace(day=1)
    return [first - relativedelta(months=count - 1 - i) for i in range(count)]


def billed_revenue(*, now: dt.datetime | None = None) -> list[Revenue]:
    """Totals of the invoices issued in each of the last 12 months (in the operator's zone), per currency."""
    now = now or timezone.now()
    zone = timezone.get_current_timezone()
    months = month_starts(timezone.localtime(now, zone).date())
    since = timezone.make_aware(dt.datetime.combine(months[0], dt.time.min), zone)
    rows = (Invoice.objects.filter(BILLED, issued_at__gte=since)
            .annotate(month=TruncMonth("issued_at", tzinfo=zone)).values("currency", "month")
            .annotate(total=Sum("total")).order_by("currency", "month"))
    by_currency: dict[str, dict[dt.date, Decimal]] = defaultdict(dict)
    for row in rows:
        by_currency[row["currency"]][timezone.localtime(row["month"], zone).date()] = row["total"]
    return [Revenue(currency, [(m, totals.get(m, Decimal(0))) for m in months])
            for currency, totals in sorted(by_currency.items())]


def owed(*, now: dt.datetime | None = None) -> list[Owed]:
    """Issued and not paid (outstanding), and of those the ones past their due date, per currency."""
    overdue = overdue_q(now or timezone.now())
    rows = (Invoice.objects.filter(status__in=OWED_STATUSES, deleted_at__isnull=True).values("currency")
            .annotate(outstanding=Sum("total"), outstanding_count=Count("id"),
                      overdue=Sum("total", filter=overdue), overdue_count=Count("id", filter=overdue))
            .order_by("currency"))
    return [Owed(r["currency"], r["outstanding"], r["outstanding_count"], r["overdue"] or Decimal(0),
                 r["overdue_count"]) for r in rows]


def needs_attention() -> list[Attention]:
    """Invoices that wait for someone, by reason, each with the filtered list it links to (only reasons with some)."""
    counts = Invoice.objects.filter(deleted_at__isnull=True).aggregate(**{
        key: Count("id", filter=Q(status__in=statuses)) for key, (_, statuses) in NEEDS_ACTION.items()})
    changelist = reverse("admin:billing_invoice_changelist")
    return [Attention(label, counts[key], f"{changelist}?needs={key}")
            for key, (label, _) in NEEDS_ACTION.items() if counts[key]]


def job_queue_down() -> str | None:
    """Why the job queue (Redis) does not answer, or None: while it is down no scheduled job runs and nothing queued
    from a request starts (it is all recorded in PostgreSQL and runs once Redis is back)."""
    try:
        redis_problem()
    except redis.RedisError as exc:
        return str(exc)
    return None


def dashboard() -> Dashboard:
    waiting, oldest = fold_backlog()
    outbox_waiting, outbox_oldest = outbox_backlog()
    return Dashboard(
        revenue=billed_revenue(),
        owed=owed(),
        attention=needs_attention(),
        webhooks_failed=NotificationDelivery.objects.filter(state=DeliveryState.FAILED).count(),
        fold_waiting=waiting,
        fold_oldest_seconds=oldest,
        outbox_waiting=outbox_waiting,
        outbox_oldest_seconds=outbox_oldest,
        job_queue_down=job_queue_down(),
        jobs=list(with_last_run(PeriodicTask.objects.filter(enabled=True).order_by("name"), "task")),
    )
