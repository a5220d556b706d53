"""Scheduled jobs record every run as a `JobRun` row: start, duration, outcome and counts of what it did. Each beat
task runs its body inside `job_run(self)` and puts its counts on the run:

    @shared_task(bind=True, name="billing.mark_overdue_invoices", acks_late=True, reject_on_worker_lost=True)
    def mark_overdue_invoices_task(self, batch_size: int = BATCH) -> int:
        with job_run(self) as run:
            marked = mark_overdue_invoices(limit=batch_size)
            run.counts["invoices marked overdue"] = marked
        ...

An operator's *Run now* (`job_run_now`) writes the row first (queued) and sends the task with the row's task id;
the worker's run then fills in that row, so the admin page waiting on it shows what the run did.
"""

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Task
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from openmeter_site.core.broker import kick
from openmeter_site.core.errors import NotFound
from openmeter_site.core.models import JobOutcome, JobRun

logger = logging.getLogger(__name__)


def _retention() -> dt.timedelta:
    return dt.timedelta(days=settings.OPENMETER_JOB_RUN_RETENTION_DAYS)


def _started_by(task: Task) -> str:
    """celery beat (django_celery_beat) sends its messages with a `periodic_task_name` header (a worker puts headers
    on the request, an eager run keeps them in `request.headers`)."""
    request = task.request
    by_beat = getattr(request, "periodic_task_name", None) or (request.headers or {}).get("periodic_task_name")
    return "schedule" if by_beat else "worker"


def _start(task: Task) -> JobRun:
    now = timezone.now()
    fresh = {"outcome": JobOutcome.RUNNING, "started_at": now, "finished_at": None, "counts": {}, "error": ""}
    task_id = task.request.id
    if task_id is None:  # called as a plain function (a test, a shell)
        return JobRun.objects.create(job=task.name, started_by="worker", created_at=now, **fresh)
    # the row exists when an operator queued this run, or when a worker died mid-run and the message came back
    run, _ = JobRun.objects.update_or_create(
        task_id=task_id, defaults=fresh,
        create_defaults={"job": task.name, "started_by": _started_by(task), "created_at": now, **fresh},
    )
    return run


def _finish(run: JobRun, outcome: JobOutcome, error: str = "") -> None:
    run.outcome, run.finished_at, run.error = outcome, timezone.now(), error
    run.save(update_fields=["outcome", "finished_at", "counts", "error"])
    JobRun.objects.filter(job=run.job, created_at__lt=run.finished_at - _retention()).delete()


@contextmanager
def job_run(task: Task) -> Iterator[JobRun]:
    """Record the run of `task` (a bound Celery task): the body sets `run.counts[...]`; an exception marks the
    run failed with its message and goes on up (Celery's own retry and logging stay as they were)."""
    run = _start(task)
    try:
        yield run
    except Exception as exc:
        try:
            _finish(run, JobOutcome.FAILED, error=f"{type(exc).__name__}: {exc}")
        except DatabaseError:  # the database may be what failed; the job's own error is the one to raise
            logger.exception("could not record the failed run %s of %s", run.pk, run.job)
        raise
    _finish(run, JobOutcome.SUCCEEDED)


def job_run_now(*, job: str, actor: str) -> JobRun:
    """Queue one run of a scheduled job now (an operator's *Run now*); returns its row, which the run fills in."""
    from openmeter_site.celery import app

    app.loader.import_default_modules()
    task = app.tasks.get(job)
    if task is None:
        raise NotFound(f"no job named {job!r}")
    run = JobRun.objects.create(job=job, task_id=str(uuid.uuid4()), started_by=actor, outcome=JobOutcome.QUEUED)
    transaction.on_commit(lambda: _send(task, run))
    return run


NOT_QUEUED = "could not queue the run: the job queue (Redis) did not answer; the job runs on its schedule once it is back"


def _send(task: Task, run: JobRun) -> None:
    """Queue the run without waiting on the broker (`kick`): with Redis down the run is marked failed at once, where
    Celery's own publishing retried for about 20 s and then held the request on the result store as long."""
    try:
        queued = kick(task, task_id=run.task_id)
    except Exception:  # eager mode (tests): the run failed and recorded it already
        logger.exception("the run %s of %s failed", run.pk, run.job)
        return
    if not queued:
        JobRun.objects.filter(pk=run.pk, outcome=JobOutcome.QUEUED).update(
            outcome=JobOutcome.FAILED, finished_at=timezone.now(), error=NOT_QUEUED)


LAST_RUN_FIELDS = ("id", "outcome", "created_at", "started_at", "finished_at", "counts", "error")


def with_last_run(queryset: QuerySet[Any], job_field: str) -> QuerySet[Any]:
    """Annotate each row with the fields of its job's latest run (`last_run_<field>`), read through the
    (job, created_at) index: no query per row, never a scan of the history."""
    latest = JobRun.objects.filter(job=OuterRef(job_field)).order_by("-created_at")
    return queryset.annotate(**{f"last_run_{f}": Subquery(latest.values(f)[:1]) for f in LAST_RUN_FIELDS})


def last_run_of(row: Any) -> JobRun | None:
    """The latest run annotated by `with_last_run` (an unsaved copy, for display)."""
    if row.last_run_id is None:
        return None
    return JobRun(**{f: getattr(row, f"last_run_{f}") for f in LAST_RUN_FIELDS})
