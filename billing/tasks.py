"""Celery tasks: thin wrappers around `billing.services.jobs`; a full batch re-enqueues itself, and period close
sends its batches to the workers at once."""

import datetime as dt

from celery import Task, shared_task
from django.utils import timezone

from openmeter_site.core.jobs import job_run

BATCH = 500


@shared_task(bind=True, name="billing.collect_gathering_invoices", acks_late=True, reject_on_worker_lost=True)
def collect_gathering_invoices_task(
    self: Task, batch_size: int = BATCH, customer_ids: list[str] | None = None, at: str | None = None
) -> int:
    """Period close. The scheduled run splits the due customers into batches, sends every batch but the first to
    the workers (as this task with `customer_ids`) and closes the first itself: the workers close them in parallel."""
    from billing.services import jobs

    with job_run(self) as run:
        moment = dt.datetime.fromisoformat(at) if at else timezone.now()
        if customer_ids is None:
            batches = jobs.due_customer_batches(at=moment, size=batch_size)
            customer_ids = next(batches, [])
            for sent, batch in enumerate(batches, start=1):
                collect_gathering_invoices_task.delay(batch_size, customer_ids=batch, at=moment.isoformat())
                run.counts["batches sent to the workers"] = sent
        closed = jobs.close_batch(customer_ids, at=moment)
        run.counts.update({"drafts created": closed.drafts, "customers due": closed.customers})
        if closed.failed:
            run.counts["customers failed (see the log)"] = closed.failed
    return closed.customers


@shared_task(bind=True, name="billing.advance_due_invoices", acks_late=True, reject_on_worker_lost=True)
def advance_due_invoices_task(self: Task, batch_size: int = BATCH) -> int:
    from billing.services.jobs import advance_due_invoices

    with job_run(self) as run:
        seen = advance_due_invoices(limit=batch_size)
        run.counts["invoices due to advance"] = seen
    if seen == batch_size:
        advance_due_invoices_task.delay(batch_size)
    return seen


@shared_task(bind=True, name="billing.mark_overdue_invoices", acks_late=True, reject_on_worker_lost=True)
def mark_overdue_invoices_task(self: Task, batch_size: int = BATCH) -> int:
    from billing.services.jobs import mark_overdue_invoices

    with job_run(self) as run:
        seen = mark_overdue_invoices(limit=batch_size)
        run.counts["invoices past due"] = seen
    if seen == batch_size:
        mark_overdue_invoices_task.delay(batch_size)
    return seen


@shared_task(bind=True, name="billing.sync_subscriptions", acks_late=True, reject_on_worker_lost=True)
def sync_subscriptions_task(self: Task) -> int:
    from billing.services.subscription_sync import subscriptions_sync_all

    with job_run(self) as run:
        synced = subscriptions_sync_all()
        run.counts["subscriptions synced"] = synced
    return synced



@shared_task(bind=True, name="billing.sync_remote_apps", acks_late=True)
def sync_remote_apps_task(self: Task) -> int:
    """Invoices waiting on a remote invoicing app: kicked when one starts waiting, and every minute."""
    from billing.services.remote_sync import sync_remote_apps

    with job_run(self) as run:
        synced = sync_remote_apps()
        run.counts["invoices synced with their app"] = synced
    return synced
