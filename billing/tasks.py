"""Celery tasks: thin wrappers around `billing.services.jobs`; a full batch re-enqueues itself."""

from celery import Task, shared_task

from openmeter_site.core.jobs import job_run

BATCH = 500


@shared_task(bind=True, name="billing.collect_gathering_invoices", acks_late=True, reject_on_worker_lost=True)
def collect_gathering_invoices_task(self: Task, batch_size: int = BATCH) -> int:
    from billing.services.jobs import collect_gathering_invoices

    with job_run(self) as run:
        closed = collect_gathering_invoices(limit=batch_size)
        run.counts.update({"drafts created": closed.drafts, "customers due": closed.customers})
    if closed.customers == batch_size:
        collect_gathering_invoices_task.delay(batch_size)
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
