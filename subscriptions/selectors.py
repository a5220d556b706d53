"""Read queries other apps use: a customer's current subscription, the items billed in a period."""

import datetime as dt

from django.db.models import Q
from django.utils import timezone

from subscriptions.models import Subscription
from subscriptions.services.timeline import ItemSpan, all_item_spans


def customer_current_subscription(*, customer_id: str, at: dt.datetime | None = None) -> Subscription | None:
    """The subscription running at `at` (active or canceled-but-not-ended), if any (`currentSubscriptionId`)."""
    at = at or timezone.now()
    return (
        Subscription.objects.filter(customer_id=customer_id, deleted_at__isnull=True, active_from__lte=at)
        .filter(Q(active_to__isnull=True) | Q(active_to__gt=at))
        .first()
    )


def subscription_items_in_period(*, subscription: Subscription, start: dt.datetime, end: dt.datetime) -> list[ItemSpan]:
    """Items whose [start, end) overlaps [start, end), each with its own span (for rating invoice lines)."""
    return [
        span for span in all_item_spans(subscription)
        if span.start < end and (span.end is None or span.end > start)
    ]
