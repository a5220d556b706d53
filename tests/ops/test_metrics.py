"""/metrics: Prometheus text with request, ingest, fold-backlog, webhook and Stripe figures; loopback or a token."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from notifications.models import DeliveryState
from notifications.services.channels import channel_create
from notifications.services.delivery import delivery_attempt
from notifications.services.evaluation import emit_invoice_event
from notifications.services.rules import rule_create
from openmeter_site.core.models import JobOutcome, JobRun
from openmeter_site.outbox.models import DeliveryState as OutboxDeliveryState
from openmeter_site.outbox.models import OutboxDelivery, OutboxEvent
from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db


def scrape(**extra) -> dict[tuple[str, tuple], float]:
    response = APIClient().get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_per_route_pattern_method_and_status(api):
    route = "api/v1/meters/<seg:meter_id_or_slug>"
    before = scrape()
    # when: two reads of two different meters (one route), one missing meter
    MeterFactory(slug="a")
    MeterFactory(slug="b")
    assert api.get("/api/v1/meters/a").status_code == 200
    assert api.get("/api/v1/meters/b").status_code == 200
    assert api.get("/api/v1/meters/missing").status_code == 404
    after = scrape()
    # then
    ok = {"route": route, "method": "GET", "status": "200"}
    assert value(after, "openmeter_http_requests_total", **ok) - value(before, "openmeter_http_requests_total", **ok) == 2
    missing = {**ok, "status": "404"}
    assert value(after, "openmeter_http_requests_total", **missing) - value(
        before, "openmeter_http_requests_total", **missing) == 1
    assert value(after, "openmeter_http_request_duration_seconds_count", **ok) - value(
        before, "openmeter_http_request_duration_seconds_count", **ok) == 2


def test_ingested_and_rejected_events_are_counted(api):
    before = scrape()
    events = [{"id": f"e{i}", "source": "s", "specversion": "1.0", "type": "t", "subject": "acme"} for i in range(3)]
    assert api.post("/api/v1/events", events, format="json").status_code == 204
    assert api.post("/api/v1/events", events[:1], format="json").status_code == 204  # a duplicate: nothing new
    assert api.post("/api/v1/events", [{"id": "x"}], format="json").status_code == 400
    after = scrape()
    assert value(after, "openmeter_events_ingested_total") - value(before, "openmeter_events_ingested_total") == 3
    assert value(after, "openmeter_ingest_rejected_total") - value(before, "openmeter_ingest_rejected_total") == 1


def test_fold_backlog_is_read_from_the_database():
    # given two events stored but not folded, the older one ingested 90 s ago
    ingest([{"subject": "acme", "time": "2026-01-01T00:00:00+00:00", "data": {"tokens": 1}}] * 2)
    with connection.cursor() as cur:
        cur.execute("UPDATE metering_event SET ingested_at = now() - interval '90 seconds' "
                    "WHERE seq = (SELECT min(seq) FROM metering_pendingevent)")
    samples = scrape()
    assert value(samples, "openmeter_events_pending") == 2
    assert 90 <= value(samples, "openmeter_events_pending_oldest_seconds") < 120


def test_failed_webhook_deliveries_and_stripe_syncs_are_gauges():
    assert value(scrape(), "openmeter_webhook_deliveries_failed") == 0
    assert value(scrape(), "openmeter_stripe_syncs_failed") == 0
    # given two deliveries that failed (their channel was disabled before they were sent)
    channel = channel_create(name="hook", url="http://127.0.0.1:9/hook")
    rule_create(type="invoice.created", name="invoices", channel_ids=[channel.id])
    events = [emit_invoice_event(invoice_payload={"id": f"01JAAAAAAAAAAAAAAAAAAAAAA{i}", "status": "issued"},
                                 event_type="invoice.created")[0] for i in range(2)]
    channel.disabled = True
    channel.save()
    for event in events:
        delivery = event.deliveries.get()
        delivery_attempt(delivery_id=delivery.id, expected_attempt=0)
        delivery.refresh_from_db()
        assert delivery.state == DeliveryState.FAILED
    # then
    assert value(scrape(), "openmeter_webhook_deliveries_failed") == 2


def test_metrics_are_refused_off_loopback_without_the_token(settings):
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert APIClient().get("/metrics", **outside).status_code == 403
    settings.OPENMETER_METRICS_TOKEN = "scrape-secret"
    assert APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 403
    assert scrape(HTTP_AUTHORIZATION="Bearer scrape-secret", **outside)
    settings.OPENMETER_METRICS_ALLOWED_NETWORKS = ["203.0.113.0/24"]
    assert scrape(**outside)


def test_upstream_debug_metrics_endpoint_is_unchanged(api):
    response = api.get("/api/v1/debug/metrics")
    assert response.status_code == 200
    assert response.content.decode().startswith("# HELP openmeter_events_total")


def test_job_runs_failures_and_durations_come_from_the_recorded_runs():
    # given beat's schedule of one job and its runs: two successes and a failure in the last hour, one older success
    every_minute = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="overdue", task="billing.mark_overdue_invoices", interval=every_minute)
    now = timezone.now().replace(microsecond=0)
    runs = [  # (minutes ago, seconds it took, outcome)
        (130, 1, JobOutcome.SUCCEEDED), (40, 2, JobOutcome.SUCCEEDED), (30, 3, JobOutcome.SUCCEEDED),
        (20, 4, JobOutcome.FAILED),
    ]
    for minutes_ago, seconds, outcome in runs:
        started = now - dt.timedelta(minutes=minutes_ago)
        JobRun.objects.create(job="billing.mark_overdue_invoices", outcome=outcome, created_at=started,
                              started_at=started, finished_at=started + dt.timedelta(seconds=seconds))
    # when
    samples = scrape()
    # then
    job = {"job": "billing.mark_overdue_invoices"}
    assert value(samples, "openmeter_job_runs_last_hour", **job, outcome="succeeded") == 2
    assert value(samples, "openmeter_job_runs_last_hour", **job, outcome="failed") == 1
    assert value(samples, "openmeter_job_run_seconds_last_hour", **job, outcome="succeeded") == 2 + 3
    assert value(samples, "openmeter_job_run_seconds_last_hour", **job, outcome="failed") == 4
    assert value(samples, "openmeter_job_last_run_duration_seconds", **job) == 4  # the failed one, 20 minutes ago
    last_success = now - dt.timedelta(minutes=30) + dt.timedelta(seconds=3)
    assert value(samples, "openmeter_job_last_success_timestamp_seconds", **job) == last_success.timestamp()


def test_outbox_backlog_counts_deliveries_not_done():
    # given an event from 60 s ago with a pending and a failed delivery, and a newer one already delivered
    old = OutboxEvent.objects.create(topic="t", created_at=timezone.now() - dt.timedelta(seconds=60))
    OutboxDelivery.objects.create(event=old, handler="a", state=OutboxDeliveryState.PENDING)
    OutboxDelivery.objects.create(event=old, handler="b", state=OutboxDeliveryState.FAILED)
    OutboxDelivery.objects.create(event=OutboxEvent.objects.create(topic="t"), handler="a", state=OutboxDeliveryState.DONE)
    samples = scrape()
    assert value(samples, "openmeter_outbox_backlog") == 2
    assert 60 <= value(samples, "openmeter_outbox_backlog_oldest_seconds") < 90
