"""Tell billing that a subscription changed: its invoice lines are synced as of the change, right after the commit,
in a Celery task (the periodic `billing.sync_subscriptions` job stays as the safety net for a lost task)."""

import datetime as dt

from django.db import transaction


def sync_billing_on_commit(subscription_id: str, at: dt.datetime) -> None:
    def send() -> None:
        from billing.tasks import sync_subscription_task

        sync_subscription_task.delay(subscription_id, at.isoformat())

    transaction.on_commit(send, robust=True)  # a broker outage must not fail the committed change
