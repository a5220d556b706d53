"""Delivery attempts in three steps, so no database transaction or row lock is held while the receiver answers:

1. claim (a short transaction): the delivery row is locked (skip_locked), checked, and marked as being sent
   until `sending_until` (the attempt's time limit plus a margin); its body and signed headers are built;
2. send: the POST, outside any transaction;
3. record (a short transaction): the attempt, the new count and state, the retry to schedule.

Safe under several workers: a task only claims when the delivery's `attempt_count` still equals the count it
was queued with and no attempt is in flight, so a Celery retry and the sweeper never both send the same
attempt. A worker that dies between claim and record leaves `sending_until` to lapse; the sweeper then sends
that attempt again (the receiver sees the same `svix-id`, so it can drop the repeat).
"""

import datetime as dt
import logging
import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications import delivery as transport
from notifications.conf import retry_delay_seconds, webhook_max_attempts, webhook_timeout_seconds
from notifications.models import DeliveryState, NotificationDelivery, NotificationDeliveryAttempt

logger = logging.getLogger(__name__)

OPEN_STATES = (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.RESENDING)
# The sweeper leaves a delivery alone this long after its planned attempt: the Celery retry is due first.
SWEEP_GRACE = dt.timedelta(minutes=2)
# How long past its time limit an attempt in flight keeps its claim (clock skew, a slow record step).
CLAIM_MARGIN = dt.timedelta(seconds=30)


@dataclass(frozen=True)
class RetryPlan:
    delivery_id: str
    expected_attempt: int
    countdown: int


@dataclass(frozen=True)
class ClaimedAttempt:
    delivery_id: str
    attempt: int  # the attempt count the claim was made at
    sending_until: dt.datetime  # the claim's mark: the record step only acts while the row still carries it
    url: str
    headers: dict[str, str]
    body: bytes


def _finish(delivery: NotificationDelivery, state: str, reason: str) -> None:
    delivery.state = state
    delivery.reason = reason[:1024]
    delivery.next_attempt_at = None
    delivery.sending_until = None
    delivery.save(update_fields=["state", "reason", "next_attempt_at", "sending_until", "attempt_count", "updated_at"])


def delivery_attempt(*, delivery_id: str, expected_attempt: int) -> RetryPlan | None:
    """Make attempt number `expected_attempt + 1` of a delivery. Returns the retry to schedule, if any."""
    claim = attempt_claim(delivery_id=delivery_id, expected_attempt=expected_attempt)
    if claim is None:
        return None
    started_at = timezone.now()
    result = transport.post(url=claim.url, headers=claim.headers, body=claim.body)
    return attempt_record(claim=claim, started_at=started_at, result=result)


@transaction.atomic
def attempt_claim(*, delivery_id: str, expected_attempt: int) -> ClaimedAttempt | None:
    """Step 1: mark the attempt as in flight, or None when there is nothing to send."""
    now = timezone.now()
    delivery = (
        NotificationDelivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("event", "channel")
        .filter(pk=delivery_id, attempt_count=expected_attempt, state__in=OPEN_STATES)
        .filter(Q(sending_until__isnull=True) | Q(sending_until__lte=now))
        .first()
    )
    if delivery is None:  # done, already attempted, in flight elsewhere, or locked by someone else right now
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
    delivery.sending_until = now + dt.timedelta(seconds=webhook_timeout_seconds()) + CLAIM_MARGIN
    delivery.save(update_fields=["sending_until", "updated_at"])
    return ClaimedAttempt(
        delivery_id=delivery.id,
        attempt=expected_attempt,
        sending_until=delivery.sending_until,
        url=channel.url,
        headers=headers,
        body=body,
    )


@transaction.atomic
def attempt_record(
    *, claim: ClaimedAttempt, started_at: dt.datetime, result: transport.AttemptResult
) -> RetryPlan | None:
    """Step 3: keep the attempt and decide what follows: done, failed for good, or a retry after a countdown."""
    delivery = NotificationDelivery.objects.select_for_update().get(pk=claim.delivery_id)
    NotificationDeliveryAttempt.objects.create(
        delivery=delivery,
        state=DeliveryState.SUCCESS if result.ok else DeliveryState.FAILED,
        timestamp=started_at,
        url=claim.url,
        status_code=result.status_code,
        response_body=result.body or result.error,
        duration_ms=result.duration_ms,
    )
    if delivery.attempt_count != claim.attempt or delivery.sending_until != claim.sending_until:
        # The claim lapsed and another worker took this attempt over: its record decides the state.
        logger.warning("webhook attempt of delivery %s recorded after its claim lapsed", delivery.id)
        return None
    delivery.attempt_count += 1
    if delivery.round_start > claim.attempt:
        # Resent while this attempt was in flight: the new round's first attempt goes out now.
        delivery.sending_until = None
        delivery.save(update_fields=["sending_until", "attempt_count", "updated_at"])
        return RetryPlan(delivery_id=delivery.id, expected_attempt=delivery.attempt_count, countdown=0)
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
    delivery.sending_until = None
    delivery.save(update_fields=["state", "reason", "next_attempt_at", "sending_until", "attempt_count", "updated_at"])
    return RetryPlan(delivery_id=delivery.id, expected_attempt=delivery.attempt_count, countdown=countdown)


def deliveries_due(*, at: dt.datetime | None = None, limit: int = 500) -> list[tuple[str, int]]:
    """Open deliveries whose task was lost (worker crash, broker flush) or whose attempt in flight lapsed:
    (id, expected attempt) to enqueue again."""
    now = at or timezone.now()
    cutoff = now - SWEEP_GRACE
    due = (
        NotificationDelivery.objects.filter(state__in=OPEN_STATES)
        .filter(Q(sending_until__isnull=True) | Q(sending_until__lte=now))
        .filter(Q(next_attempt_at__lte=cutoff) | Q(next_attempt_at__isnull=True, updated_at__lte=cutoff))
    )
    return list(due.order_by("next_attempt_at", "id").values_list("id", "attempt_count")[:limit])
