"""Delivery attempts: claim a delivery row, POST the signed payload, record the attempt, decide on a retry.

Safe under several workers: the row is locked (skip_locked) for the attempt, and a task only acts when the
delivery's `attempt_count` still equals the count it was queued with, so a Celery retry and the sweeper can
never both send the same attempt.
"""

import datetime as dt
import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications import delivery as transport
from notifications.conf import retry_delay_seconds, webhook_max_attempts
from notifications.models import DeliveryState, NotificationDelivery, NotificationDeliveryAttempt

OPEN_STATES = (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.RESENDING)
# The sweeper leaves a delivery alone this long after its planned attempt: the Celery retry is due first.
SWEEP_GRACE = dt.timedelta(minutes=2)


@dataclass(frozen=True)
class RetryPlan:
    delivery_id: str
    expected_attempt: int
    countdown: int


def _finish(delivery: NotificationDelivery, state: str, reason: str) -> None:
    delivery.state = state
    delivery.reason = reason[:1024]
    delivery.next_attempt_at = None
    delivery.save(update_fields=["state", "reason", "next_attempt_at", "attempt_count", "updated_at"])


def delivery_attempt(*, delivery_id: str, expected_attempt: int) -> RetryPlan | None:
    """Make attempt number `expected_attempt + 1` of a delivery. Returns the retry to schedule, if any."""
    with transaction.atomic():
        delivery = (
            NotificationDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event", "channel")
            .filter(pk=delivery_id, attempt_count=expected_attempt, state__in=OPEN_STATES)
            .first()
        )
        if delivery is None:  # done, already attempted by someone else, or being attempted right now
            return None
        channel = delivery.channel
        if channel.deleted_at is not None or channel.disabled:
            _finish(delivery, DeliveryState.FAILED, "channel is disabled or deleted")
            return None
        body = delivery.event.payload_json.encode()
        headers = transport.signed_headers(
            secret=channel.signing_secret,
            msg_id=delivery.event_id,
            body=body,
            custom=channel.custom_headers or {},
            now=time.time(),
        )
        started_at = timezone.now()
        result = transport.post(url=channel.url, headers=headers, body=body)
        NotificationDeliveryAttempt.objects.create(
            delivery=delivery,
            state=DeliveryState.SUCCESS if result.ok else DeliveryState.FAILED,
            timestamp=started_at,
            url=channel.url,
            status_code=result.status_code,
            response_body=result.body or result.error,
            duration_ms=result.duration_ms,
        )
        delivery.attempt_count += 1
        if result.ok:
            _finish(delivery, DeliveryState.SUCCESS, "")
            return None
        attempts_in_round = delivery.attempt_count - delivery.round_start
        if not result.retryable or attempts_in_round >= webhook_max_attempts():
            _finish(delivery, DeliveryState.FAILED, f"{result.error} (after {attempts_in_round} attempt(s))")
            return None
        countdown = retry_delay_seconds(attempts_in_round)
        delivery.state = DeliveryState.SENDING
        delivery.reason = result.error[:1024]
        delivery.next_attempt_at = timezone.now() + dt.timedelta(seconds=countdown)
        delivery.save(update_fields=["state", "reason", "next_attempt_at", "attempt_count", "updated_at"])
        return RetryPlan(delivery_id=delivery.id, expected_attempt=delivery.attempt_count, countdown=countdown)


def deliveries_due(*, at: dt.datetime | None = None, limit: int = 500) -> list[tuple[str, int]]:
    """Open deliveries whose task was lost (worker crash, broker flush): (id, expected attempt) to enqueue again."""
    cutoff = (at or timezone.now()) - SWEEP_GRACE
    due = NotificationDelivery.objects.filter(state__in=OPEN_STATES).filter(
        Q(next_attempt_at__lte=cutoff) | Q(next_attempt_at__isnull=True, updated_at__lte=cutoff)
    )
    return list(due.order_by("next_attempt_at", "id").values_list("id", "attempt_count")[:limit])
