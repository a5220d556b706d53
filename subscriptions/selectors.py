"""Read queries other apps use: a customer's current subscription, the items billed in a period."""

import datetime as dt

from django.db.models import Q, QuerySet
from django.utils import timezone

from subscriptions.models import Subscription, SubscriptionStatus
from subscriptions.services.timeline import ItemSpan, all_item_spans


def subscription_status_q(status: str, at: dt.datetime) -> Q:
    """The derived SubscriptionStatus as a filter on live (not deleted) rows."""
    started, ended = Q(active_from__lte=at), Q(active_to__isnull=False, active_to__lte=at)
    if status == SubscriptionStatus.ACTIVE:
        return started & Q(active_to__isnull=True)
    if status == SubscriptionStatus.CANCELED:
        return started & Q(active_to__gt=at)
    if status == SubscriptionStatus.SCHEDULED:
        return Q(active_from__gt=at) & ~ended
    return ended


def customer_subscriptions_qs(*, customer_id: str) -> QuerySet[Subscription]:
    """`customers.listSubscriptions`: the customer's live subscriptions."""
    return Subscription.objects.filter(customer_id=customer_id, deleted_at__isnull=True).select_related("plan")


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
