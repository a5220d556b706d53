"""Notification events: one firing of a rule, with one delivery per channel, sent after commit."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from notifications import payloads
from notifications.models import DeliveryState, NotificationDelivery, NotificationEvent, NotificationRule
from openmeter_site.core.broker import kick
from openmeter_site.core.errors import InvalidInput, NotFound
from openmeter_site.core.ids import new_id


@dataclass(frozen=True)
class EventSubject:
    """What an event is about, kept beside the payload for the list filters."""

    subject_key: str | None = None
    feature_id: str | None = None
    feature_key: str | None = None
    entitlement_id: str | None = None
    invoice_id: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)


def enqueue_delivery(delivery: NotificationDelivery) -> None:
    """Send after the surrounding transaction commits (a task must never see uncommitted rows).

    Best effort: if the broker is down the delivery stays open and the `dispatch_due` sweeper queues it later.
    """
    from notifications.tasks import deliver_task

    delivery_id, expected = delivery.id, delivery.attempt_count
    transaction.on_commit(lambda: kick(deliver_task, delivery_id, expected), robust=True)


def event_create(
    *,
    rule: NotificationRule,
    data: dict[str, Any],
    about: EventSubject,
    dedup_key: str | None = None,
    at: dt.datetime | None = None,
) -> NotificationEvent | None:
    """Record the event and its deliveries to the rule's enabled channels; None if `dedup_key` already fired."""
    now = at or timezone.now()
    event_id = new_id()
    try:
        with transaction.atomic():
            event = NotificationEvent.objects.create(
                id=event_id,
                created_at=now,
                type=rule.type,
                rule=rule,
                payload_json=payloads.build(event_id=event_id, event_type=rule.type, timestamp=now, data=data),
                annotations=about.annotations,
                subject_key=about.subject_key,
                feature_id=about.feature_id,
                feature_key=about.feature_key,
                entitlement_id=about.entitlement_id,
                invoice_id=about.invoice_id,
                dedup_key=dedup_key,
            )
    except IntegrityError:
        if dedup_key is None:
            raise
        return None
    channels = rule.channels.filter(deleted_at__isnull=True, disabled=False)
    deliveries = NotificationDelivery.objects.bulk_create(
        [NotificationDelivery(event=event, channel=channel) for channel in channels]
    )
    for delivery in deliveries:
        enqueue_delivery(delivery)
    return event


def event_get(*, event_id: str) -> NotificationEvent:
    event = NotificationEvent.objects.filter(pk=event_id).first()
    if event is None:
        raise NotFound(f"notification event {event_id} not found")
    return event


@transaction.atomic
def event_resend(*, event_id: str, channel_ids: Sequence[str] | None = None) -> list[NotificationDelivery]:
    """Send the event again to all its channels (or the given ones): a fresh round with a fresh retry budget."""
    event = event_get(event_id=event_id)
    deliveries = list(NotificationDelivery.objects.select_for_update().filter(event=event).order_by("id"))
    if channel_ids:
        known = {d.channel_id for d in deliveries}
        unknown = [c for c in channel_ids if c not in known]
        if unknown:
            raise InvalidInput(f"channels: the event was not sent to channel(s) {', '.join(unknown)}")
        deliveries = [d for d in deliveries if d.channel_id in channel_ids]
    now = timezone.now()
    for delivery in deliveries:
        in_flight = delivery.sending_until is not None and delivery.sending_until > now
        delivery.state = DeliveryState.RESENDING
        delivery.reason = ""
        # An attempt in flight belongs to the old round; when it is recorded, the new round's first attempt is sent.
        delivery.round_start = delivery.attempt_count + (1 if in_flight else 0)
        delivery.next_attempt_at = None
        delivery.save(update_fields=["state", "reason", "round_start", "next_attempt_at", "updated_at"])
        if not in_flight:
            enqueue_delivery(delivery)
    return deliveries
