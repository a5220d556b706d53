from celery import shared_task


@shared_task(name="integrations.stripe_sync_retry_due", acks_late=True)
def stripe_sync_retry_due_task() -> int:
    from integrations.stripe.retries import stripe_sync_retry_due

    return stripe_sync_retry_due()
