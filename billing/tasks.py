"""Celery tasks: thin wrappers around `billing.services.jobs`; a full batch re-enqueues itself."""

import datetime as dt

from celery import shared_task

BATCH = 500


@shared_task(name="billing.collect_gathering_invoices", acks_late=True, reject_on_worker_lost=True)
def collect_gathering_invoices_task(batch_size: int = BATCH) -> int:
    from billing.services.jobs import collect_gathering_invoices

    seen = collect_gathering_invoices(limit=batch_size)
    if seen == batch_size:
        collect_gathering_invoices_task.delay(batch_size)
    return seen


@shared_task(name="billing.advance_due_invoices", acks_late=True, reject_on_worker_lost=True)
def advance_due_invoices_task(batch_size: int = BATCH) -> int:
    from billing.services.jobs import advance_due_invoices

    seen = advance_due_invoices(limit=batch_size)
    if seen == batch_size:
        advance_due_invoices_task.delay(batch_size)
    return seen


@shared_task(name="billing.mark_overdue_invoices", acks_late=True, reject_on_worker_lost=True)
def mark_overdue_invoices_task(batch_size: int = BATCH) -> int:
    from billing.services.jobs import mark_overdue_invoices

    seen = mark_overdue_invoices(limit=batch_size)
    if seen == batch_size:
        mark_overdue_invoices_task.delay(batch_size)
    return seen


@shared_task(name="billing.sync_subscriptions", acks_late=True, reject_on_worker_lost=True)
def sync_subscriptions_task() -> int:
    from billing.services.subscription_sync import subscriptions_sync_all

    return subscriptions_sync_all()


@shared_task(name="billing.sync_subscription", acks_late=True, reject_on_worker_lost=True)
def sync_subscription_task(subscription_id: str, at: str | None = None) -> None:
    """Queued after the commit of a subscription change, to sync as of the change (`at`, RFC 3339); the sync is
    idempotent, so a repeat is harmless."""
    from billing.services.subscription_sync import subscription_sync

    subscription_sync(subscription_id=subscription_id, at=dt.datetime.fromisoformat(at) if at else None)
