"""Celery tasks: thin wrappers around the notification services."""

from celery import shared_task


@shared_task(name="notifications.deliver", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def deliver_task(self, delivery_id: str, expected_attempt: int) -> None:
    """One webhook attempt; on a retryable failure the retry is this task again after an exponential countdown."""
    from notifications.services.delivery import delivery_attempt

    plan = delivery_attempt(delivery_id=delivery_id, expected_attempt=expected_attempt)
    if plan is not None:
        raise self.retry(args=(plan.delivery_id, plan.expected_attempt), countdown=plan.countdown)


@shared_task(name="notifications.dispatch_due")
def dispatch_due_task() -> int:
    """Re-enqueue open deliveries whose task was lost; idempotent (the attempt counter guards each send)."""
    from notifications.services.delivery import deliveries_due

    due = deliveries_due()
    for delivery_id, expected in due:
        deliver_task.delay(delivery_id, expected)
    return len(due)
