"""Celery tasks: thin wrappers around the notification services."""

from celery import shared_task


@shared_task(name="notifications.deliver", acks_late=True, reject_on_worker_lost=True)
def deliver_task(delivery_id: str, expected_attempt: int) -> None:
    """One webhook attempt; after a retryable failure the next attempt is queued with an exponential countdown.

    (A new message rather than `self.retry`, so eager mode runs the retries inline as a worker would, minus the wait.)
    """
    from notifications.services.delivery import delivery_attempt

    plan = delivery_attempt(delivery_id=delivery_id, expected_attempt=expected_attempt)
    if plan is not None:
        deliver_task.apply_async((plan.delivery_id, plan.expected_attempt), countdown=plan.countdown)


@shared_task(name="notifications.dispatch_due")
def dispatch_due_task() -> int:
    """Re-enqueue open deliveries whose task was lost; idempotent (the attempt counter guards each send)."""
    from notifications.services.delivery import deliveries_due

    due = deliveries_due()
    for delivery_id, expected in due:
        deliver_task.delay(delivery_id, expected)
    return len(due)


@shared_task(name="notifications.evaluate_new_usage", acks_late=True)
def evaluate_new_usage_task() -> int:
    """After ingest (and every minute): balance thresholds of the entitlements whose subjects got new events."""
    from notifications.services.sources import thresholds_evaluate_new_usage

    return len(thresholds_evaluate_new_usage())


@shared_task(name="notifications.evaluate_all_thresholds", acks_late=True)
def evaluate_all_thresholds_task() -> int:
    from notifications.services.sources import thresholds_evaluate_all

    return len(thresholds_evaluate_all())


@shared_task(name="notifications.emit_recent_resets", acks_late=True)
def emit_recent_resets_task() -> int:
    """Usage resets (manual or automatic) recorded in the last hour, each notified once."""
    from notifications.services.sources import resets_emit_recent

    return len(resets_emit_recent())



@shared_task(name="notifications.emit_invoice_events", acks_late=True)
def emit_invoice_events_task() -> int:
    """invoice.created / invoice.updated for the invoice audit rows billing wrote since the last run."""
    from notifications.services.invoices import invoice_events_emit_new

    return len(invoice_events_emit_new())
