"""Celery tasks: thin, idempotent wrappers around the rollup services (safe with two workers: advisory lock)."""

from celery import Task, shared_task

from openmeter_site.core.jobs import job_run


@shared_task(bind=True, name="metering.fold_pending", acks_late=True)
def fold_pending_task(self: Task) -> int:
    from metering.postgres.fold import fold_backlog

    with job_run(self) as run:
        folded = fold_backlog()
        run.counts["events folded"] = folded
    return folded


@shared_task(name="metering.backfill_meter", acks_late=True, reject_on_worker_lost=True)
def backfill_meter_task(meter_id: str) -> None:
    from metering.postgres.fold import backfill

    backfill(meter_id=meter_id)


@shared_task(bind=True, name="metering.resume_backfills", acks_late=True)
def resume_backfills_task(self: Task) -> int:
    """Finish any backfill whose task was lost (worker crash, broker restart)."""
    from metering.models import Meter
    from metering.postgres.fold import backfill

    with job_run(self) as run:
        meter_ids = list(
            Meter.objects.filter(deleted_at__isnull=True, backfill_cursor__isnull=False).values_list("pk", flat=True)
        )
        for meter_id in meter_ids:
            backfill(meter_id=meter_id)
        run.counts["meter rollups rebuilt"] = len(meter_ids)
    return len(meter_ids)
