"""Billing's reactions to domain events of the apps below it (registered in `BillingConfig.ready`)."""

import datetime as dt

from billing.services.subscription_sync import subscription_sync
from openmeter_site.outbox.models import OutboxEvent


def sync_changed_subscription(event: OutboxEvent) -> None:
    """A subscription changed: reconcile its invoice lines as of the change (idempotent, so a repeat is harmless;
    the periodic `billing.sync_subscriptions` job stays as a reconciliation of everything)."""
    subscription_sync(subscription_id=event.payload["subscription_id"], at=dt.datetime.fromisoformat(event.payload["at"]))
