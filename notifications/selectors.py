"""Read queries shared by the API and the admin: each owns its prefetches."""

from django.db.models import Prefetch, QuerySet

from notifications.models import (
    NotificationChannel,
    NotificationDelivery,
    NotificationDeliveryAttempt,
    NotificationEvent,
    NotificationRule,
)


def channel_list_qs(*, include_deleted: bool = False, include_disabled: bool = False) -> QuerySet[NotificationChannel]:
    qs = NotificationChannel.objects.all()
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    if not include_disabled:
        qs = qs.filter(disabled=False)
    return qs


def rule_list_qs(*, include_deleted: bool = False, include_disabled: bool = False) -> QuerySet[NotificationRule]:
    qs = NotificationRule.objects.prefetch_related(
        Prefetch("channels", queryset=NotificationChannel.objects.order_by("id")), "features"
    )
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    if not include_disabled:
        qs = qs.filter(disabled=False)
    return qs


def event_list_qs() -> QuerySet[NotificationEvent]:
    deliveries = NotificationDelivery.objects.select_related("channel").prefetch_related(
        Prefetch("attempts", queryset=NotificationDeliveryAttempt.objects.order_by("timestamp", "id"))
    )
    return NotificationEvent.objects.select_related("rule").prefetch_related(
        Prefetch("rule__channels", queryset=NotificationChannel.objects.order_by("id")),
        "rule__features",
        Prefetch("deliveries", queryset=deliveries.order_by("id")),
    )
