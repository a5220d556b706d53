"""Celery tasks: thin, idempotent wrappers around the event store's aggregates (safe with two workers)."""

from celery import Task, shared_task

from openmeter_site.core.jobs import job_run


@shared_task(bind=True, name="metering.fold_pending", acks_late=True)
def fold_pending_task(self: Task) -> int:
    from metering.event_store import event_store

    with job_run(self) as run:
        folded = event_store().aggregates_catch_up()
        run.counts["events folded"] = folded
    return folded


@shared_task(name="metering.backfill_meter", acks_late=True, reject_on_worker_lost=True)
def backfill_meter_task(meter_id: str) -> None:
    from metering.event_store import event_store

    event_store().aggregates_build(meter_id=meter_id)


@shared_task(bind=True, name="metering.resume_backfills", acks_late=True)
def resume_backfills_task(self: Task) -> int:
    """Finish any backfill whose task was lost (worker crash, broker restart)."""
    from metering.event_store import event_store

    with job_run(self) as run:
        built = event_store().aggregates_resume()
        run.counts["meter rollups rebuilt"] = built
    return built


@shared_task(bind=True, name="metering.events_maintain", acks_late=True)
def events_maintain_task(self: Task) -> None:
    """Months of events ready ahead of time, expired de-duplication keys purged, retention applied."""
    from django.utils import timezone

    from metering.event_store import event_store

    with job_run(self) as run:
        run.counts.update(event_store().events_maintain(at=timezone.now()))
