from celery import Task, shared_task

from openmeter_site.core.jobs import job_run


@shared_task(bind=True, name="subscriptions.sync_entitlements_due", acks_late=True)
def sync_entitlements_due_task(self: Task, batch_size: int = 500) -> int:
    """Provision entitlements for subscription items whose start has come (idempotent, skip-locked)."""
    from subscriptions.services.provisioning import sync_entitlements_due

    with job_run(self) as run:
        synced = sync_entitlements_due(limit=batch_size)
        run.counts["subscriptions synced"] = synced
    return synced
