from celery import Task, shared_task

from openmeter_site.core.jobs import job_run


@shared_task(bind=True, name="integrations.stripe_sync_retry_due", acks_late=True)
def stripe_sync_retry_due_task(self: Task) -> int:
    from integrations.stripe.retries import stripe_sync_retry_due

    with job_run(self) as run:
        retried = stripe_sync_retry_due()
        run.counts["Stripe syncs retried"] = retried
    return retried
