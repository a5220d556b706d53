"""Celery tasks: thin wrappers around the outbox relay."""

from celery import shared_task


@shared_task(name="outbox.relay", acks_late=True)
def relay_task() -> int:
    """Kicked after each commit that published events, and run by beat as the safety net; a full batch re-enqueues."""
    from openmeter_site.outbox.services import RELAY_BATCH, relay_due

    handled = relay_due(limit=RELAY_BATCH)
    if handled == RELAY_BATCH:
        relay_task.delay()
    return handled


@shared_task(name="outbox.purge_delivered")
def purge_delivered_task() -> int:
    from openmeter_site.outbox.services import events_purge_delivered

    return events_purge_delivered()
