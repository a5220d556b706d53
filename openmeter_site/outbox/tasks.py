"""Celery tasks: thin wrappers around the outbox relay."""

from celery import Task, shared_task

from openmeter_site.core.jobs import job_run


@shared_task(bind=True, name="outbox.relay", acks_late=True)
def relay_task(self: Task) -> int:
    """Kicked after each commit that published events, and run by beat as the safety net; a full batch re-enqueues."""
    from openmeter_site.outbox.services import RELAY_BATCH, relay_due

    with job_run(self) as run:
        handled = relay_due(limit=RELAY_BATCH)
        run.counts["deliveries handled"] = handled
    if handled == RELAY_BATCH:
        relay_task.delay()
    return handled


@shared_task(bind=True, name="outbox.purge_delivered")
def purge_delivered_task(self: Task) -> int:
    from openmeter_site.outbox.services import events_purge_delivered

    with job_run(self) as run:
        deleted = events_purge_delivered()
        run.counts["rows deleted"] = deleted
    return deleted
