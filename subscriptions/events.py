"""Domain events subscriptions publish through the outbox; apps above subscribe to them in `AppConfig.ready`."""

import datetime as dt
from typing import TypedDict

from openmeter_site.outbox.services import publish

SUBSCRIPTION_CHANGED = "subscriptions.subscription_changed"


class SubscriptionChanged(TypedDict):
    subscription_id: str
    at: str  # RFC 3339: when the change was made (billing syncs the periods started by then)


def subscription_changed(subscription_id: str, at: dt.datetime) -> None:
    """A subscription was created, changed, cancelled, edited or had add-ons bought: billing re-syncs its lines."""
    publish(SUBSCRIPTION_CHANGED, SubscriptionChanged(subscription_id=subscription_id, at=at.isoformat()))
