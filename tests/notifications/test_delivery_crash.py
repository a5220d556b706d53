"""Crash test of a webhook delivery: a real Celery worker is killed (SIGKILL) while the receiver holds its POST,
between the claim's commit and the record's. The attempt lapses and the sweeper's task sends it again: the
receiver gets the same signed message twice (same `svix-id`, so it can drop the repeat) and the delivery ends
SUCCESS after one recorded attempt."""

import threading
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.db.models import F

from notifications.models import DeliveryState, NotificationDelivery
from notifications.services.delivery import SWEEP_GRACE
from notifications.services.evaluation import emit_invoice_event
from notifications.tasks import dispatch_due_task
from openmeter_site.celery import app as celery_app
from tests import conftest
from tests.notifications.test_delivery import INVOICE, invoice_rule
from tests.workers import Workers, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def workers(django_db_blocker) -> Iterator[Workers]:
    """This test's tasks go to its own queue, worked by real worker processes (not run in-process)."""
    workers = Workers()
    saved = celery_app.conf.task_default_queue, celery_app.conf.task_always_eager
    celery_app.conf.task_default_queue, celery_app.conf.task_always_eager = workers.queue, False
    try:
        yield workers
    finally:
        celery_app.conf.task_default_queue, celery_app.conf.task_always_eager = saved
        workers.stop_all()
        conftest.wait_for_no_connections(django_settings.DATABASES["default"]["NAME"], django_db_blocker)


def test_worker_killed_while_the_receiver_holds_the_post(receiver, workers):
    channel, _ = invoice_rule(receiver.url)
    release = threading.Event()
    receiver.hold = release
    worker = workers.start()
    try:
        # given a worker mid-POST: the attempt's claim committed, its record not
        [event] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created")
        assert receiver.started.wait(60)
        workers.kill(worker)
    finally:
        release.set()  # the receiver answers a connection nobody reads any more
    delivery = NotificationDelivery.objects.get(event=event)
    assert (delivery.state, delivery.attempt_count, delivery.attempts.count()) == (DeliveryState.PENDING, 0, 0)
    assert delivery.sending_until is not None
    # when the claim has lapsed and the sweeper's grace is over (moved into the past rather than waited for)
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        sending_until=F("created_at"), updated_at=F("updated_at") - SWEEP_GRACE

    )
    receiver.hold = None
    workers.start()
    assert dispatch_due_task() == 1
    # then the attempt is made again and recorded once
    wait_for(lambda: NotificationDelivery.objects.get(pk=delivery.pk).state == DeliveryState.SUCCESS, "the resend")
    delivery.refresh_from_db()
    assert (delivery.attempt_count, delivery.attempts.count(), delivery.sending_until) == (1, 1, None)
    first, second = receiver.requests
    assert first.headers["svix-id"] == second.headers["svix-id"] == event.id
    assert first.body == second.body
    assert receiver.verify(second, channel.signing_secret)
