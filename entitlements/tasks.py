from celery import shared_task


@shared_task(name="entitlements.reset_due", acks_late=True)
def entitlement_reset_due_task() -> int:
    from entitlements.services import entitlement_reset_due

    return entitlement_reset_due()
