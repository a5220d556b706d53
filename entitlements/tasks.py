from celery import Task, shared_task

from openmeter_site.core.jobs import job_run


@shared_task(bind=True, name="entitlements.reset_due", acks_late=True)
def entitlement_reset_due_task(self: Task) -> int:
    from entitlements.services import entitlement_reset_due

    with job_run(self) as run:
        recorded = entitlement_reset_due()
        run.counts["resets recorded"] = recorded
    return recorded
