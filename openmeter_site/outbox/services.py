"""Domain events through a transactional outbox.

`publish` writes the event, and one delivery row per handler registered for its topic, in the transaction of the
change it reports: both commit or neither does. After the commit the relay task is kicked (best effort, see
`openmeter_site.core.broker`); the `outbox.relay` beat job relays whatever a lost kick, a dead worker or a
failed handler left behind. The relay claims one delivery at a time with `FOR UPDATE SKIP LOCKED` and marks it
done in the same transaction as the handler's own writes, so two relays never hand one event to the same handler
twice, and a crash mid-handler leaves the delivery pending with nothing of the handler's work committed. A handler
that raises is retried with exponential backoff, then left `failed` for an admin to retry.
"""

import datetime as dt
import logging
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from openmeter_site.core.broker import kick_on_commit
from openmeter_site.outbox.models import DeliveryState, OutboxDelivery, OutboxEvent
from openmeter_site.outbox.registry import handler_for, handler_names
from openmeter_site.outbox.tasks import relay_task

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
RETRY_BASE = dt.timedelta(seconds=10)
RETRY_CAP = dt.timedelta(hours=1)
RELAY_BATCH = 100
KEEP_DELIVERED = dt.timedelta(days=7)


def publish(topic: str, payload: Mapping[str, Any]) -> None:
    """Record a domain event inside the caller's transaction (nothing when no app handles the topic)."""
    publish_all(topic, [payload])


def publish_all(topic: str, payloads: Sequence[Mapping[str, Any]]) -> None:
    """Record events of one topic inside the caller's transaction, in bulk."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("publish a domain event inside the transaction of the change it reports")
    names = handler_names(topic)
    if not names or not payloads:
        return
    events = OutboxEvent.objects.bulk_create([OutboxEvent(topic=topic, payload=dict(payload)) for payload in payloads])
    OutboxDelivery.objects.bulk_create([OutboxDelivery(event=event, handler=name) for event in events for name in names])
    kick_on_commit(relay_task)


def retry_delay(attempts: int) -> dt.timedelta:
    """After the n-th failed attempt: 10 s, 20 s, 40 s, ... at most an hour."""
    return min(RETRY_BASE * 2 ** (attempts - 1), RETRY_CAP)


def relay_due(*, limit: int = RELAY_BATCH) -> int:
    """Hand due deliveries to their handlers, one per transaction; the number handled (delivered or failed)."""
    handled = 0
    while handled < limit and _relay_one():
        handled += 1
    return handled


def _relay_one() -> bool:
    with transaction.atomic():
        now = timezone.now()
        delivery = (
            OutboxDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event")
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), state=DeliveryState.PENDING)
            .order_by(F("next_attempt_at").asc(nulls_first=True), "id")
            .first()
        )
        if delivery is None:
            return False
        handler = handler_for(delivery.event.topic, delivery.handler)
        delivery.attempts += 1
        try:
            if handler is None:
                raise LookupError(f"no handler {delivery.handler!r} is registered for {delivery.event.topic!r}")
            with transaction.atomic():
                handler(delivery.event)
        except Exception as exc:
            logger.exception("outbox handler %s failed on %s", delivery.handler, delivery.event)
            _record_failure(delivery, exc, now)
        else:
            delivery.state = DeliveryState.DONE
            delivery.delivered_at = now
            delivery.save(update_fields=["state", "attempts", "delivered_at"])
    return True


def _record_failure(delivery: OutboxDelivery, exc: Exception, now: dt.datetime) -> None:
    delivery.last_error = "".join(traceback.format_exception(exc, limit=-8))[-4000:]
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.state = DeliveryState.FAILED
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = now + retry_delay(delivery.attempts)
    delivery.save(update_fields=["state", "attempts", "next_attempt_at", "last_error"])


def deliveries_retry(*, delivery_ids: Iterable[int]) -> int:
    """Admin: deliver these again now with a fresh attempt budget (done ones are left alone)."""
    with transaction.atomic():
        count = (
            OutboxDelivery.objects.filter(pk__in=list(delivery_ids))
            .exclude(state=DeliveryState.DONE)
            .update(state=DeliveryState.PENDING, attempts=0, next_attempt_at=None)
        )
        if count:
            kick_on_commit(relay_task)
    return count


def events_purge_delivered(*, at: dt.datetime | None = None) -> int:
    """Delete events older than a week whose every delivery is done."""
    cutoff = (at or timezone.now()) - KEEP_DELIVERED
    old = OutboxEvent.objects.filter(created_at__lt=cutoff).exclude(deliveries__state__in=[DeliveryState.PENDING,
                                                                                            DeliveryState.FAILED])
    deleted, _ = OutboxEvent.objects.filter(pk__in=old.values("pk")[:10_000]).delete()
    return deleted
