"""Celery tasks: thin wrappers around the notification services."""

from celery import Task, shared_task

from openmeter_site.core.jobs import job_run


@shared_task(name="notifications.deliver", acks_late=True, reject_on_worker_lost=True)
def deliver_task(delivery_id: str, expected_attempt: int) -> None:
    """One webhook attempt; after a retryable failure the next attempt is queued with an exponential countdown.

    (A new message rather than `self.retry`, so eager mode runs the retries inline as a worker would, minus the wait.)
    """
    from notifications.services.delivery import delivery_attempt

    plan = delivery_attempt(delivery_id=delivery_id, expected_attempt=expected_attempt)
    if plan is not None:
        deliver_task.apply_async((plan.delivery_id, plan.expected_attempt), countdown=plan.countdown)


@shared_task(bind=True, name="notifications.dispatch_due")
def dispatch_due_task(self: Task) -> int:
    """Re-enqueue open deliveries whose task was lost; idempotent (the attempt counter guards each send)."""
    from notifications.services.delivery import deliveries_due

    with job_run(self) as run:
        due = deliveries_due()
        for delivery_id, expected in due:
            deliver_task.delay(delivery_id, expected)
        run.counts["deliveries re-queued"] = len(due)
    return len(due)


@shared_task(bind=True, name="notifications.evaluate_new_usage", acks_late=True)
def evaluate_new_usage_task(self: Task) -> int:
    """After ingest (and every minute): balance thresholds of the entitlements whose subjects got new events."""
    from notifications.services.sources import thresholds_evaluate_new_usage

    with job_run(self) as run:
        sent = len(thresholds_evaluate_new_usage())
        run.counts["threshold events"] = sent
    return sent


@shared_task(bind=True, name="notifications.evaluate_all_thresholds", acks_late=True)
def evaluate_all_thresholds_task(self: Task) -> int:
    from notifications.services.sources import thresholds_evaluate_all

    with job_run(self) as run:
        sent = len(thresholds_evaluate_all())
        run.counts["threshold events"] = sent
    return sent


@shared_task(bind=True, name="notifications.emit_recent_resets", acks_late=True)
def emit_recent_resets_task(self: Task) -> int:
    """Usage resets (manual or automatic) recorded in the last hour, each notified once."""
    from notifications.services.sources import resets_emit_recent

    with job_run(self) as run:
        sent = len(resets_emit_recent())
        run.counts["reset events"] = sent
    return sent

