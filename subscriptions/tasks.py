from celery import shared_task


@shared_task(name="subscriptions.sync_entitlements_due", acks_late=True)
def sync_entitlements_due_task(batch_size: int = 500) -> int:
    """Provision entitlements for subscription items whose start has come (idempotent, skip-locked)."""
    from subscriptions.services.provisioning import sync_entitlements_due

    synced = sync_entitlements_due(limit=batch_size)
    return synced
