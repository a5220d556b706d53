"""Delivery through a real Celery worker on Redis: the retry is a real delayed message."""

import time

import pytest

from notifications.models import DeliveryState, NotificationDelivery
from notifications.services.channels import channel_create
from notifications.services.evaluation import emit_invoice_event
from notifications.services.rules import rule_create


@pytest.fixture
def worker(start_celery_worker):
    # the test's `.delay()` calls (deliveries, retries with a countdown) go to this worker's queue
    return start_celery_worker(env={"OPENMETER_WEBHOOK_ALLOW_PRIVATE": "1", "OPENMETER_WEBHOOK_RETRY_BASE_SECONDS": "1"})


def wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


@pytest.mark.django_db(transaction=True)
def test_worker_delivers_and_retries_after_a_failure(worker, receiver):
    # given a receiver that fails the first attempt
    receiver.script = [503]
    channel = channel_create(name="hook", url=receiver.url)
    rule_create(type="invoice.created", name="r", channel_ids=[channel.id])
    # when the event is emitted (the delivery task goes to Redis; the worker runs it)
    [event] = emit_invoice_event(
        invoice_payload={"id": "01JAAAAAAAAAAAAAAAAAAAAAAA", "type": "standard", "status": "issued"},
        event_type="invoice.created",
    )
    # then
    delivery = NotificationDelivery.objects.get(event=event)
    wait_for(lambda: NotificationDelivery.objects.get(pk=delivery.pk).state == DeliveryState.SUCCESS)
    assert len(receiver.requests) == 2
    assert all(receiver.verify(r, channel.signing_secret) for r in receiver.requests)
    assert [a.status_code for a in delivery.attempts.order_by("timestamp")] == [503, 200]
