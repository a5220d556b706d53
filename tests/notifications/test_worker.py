"""Delivery through a real Celery worker on Redis: the retry is a real delayed message."""

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings

from notifications.models import DeliveryState, NotificationDelivery
from notifications.services.channels import channel_create
from notifications.services.evaluation import emit_invoice_event
from notifications.services.rules import rule_create
from openmeter_site.celery import app
from tests.conftest import ROOT
from tests.conftest import test_database_url as database_url


@pytest.fixture
def worker(django_db_setup):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "openmeter_site.settings",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "OPENMETER_WEBHOOK_ALLOW_PRIVATE": "1",
        "OPENMETER_WEBHOOK_RETRY_BASE_SECONDS": "1",
    }
    app.control.purge()  # leftovers of an earlier run; messages sent from now on wait for the worker
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "openmeter_site", "worker", "--pool=solo",
         "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env,
    )
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield process
    finally:
        app.conf.task_always_eager = eager
        process.terminate()
        process.wait(timeout=20)


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
