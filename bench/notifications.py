"""Notification costs: webhook delivery and balance-threshold evaluation after ingest.

1. Delivery: N events to a local receiver through `delivery_attempt` (sign, POST, record the attempt), beside a
   bare `requests.post` of the same body to the same receiver in the same run (the transport floor).
2. Evaluation: one ingest batch touching C customers, each with a metered entitlement; the time of
   `thresholds_evaluate_new_usage` (cursor, subjects, values, rules, dedup inserts) beside the time of computing
   the same C entitlement values alone (the entitlement engine floor), in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/om_notify_bench .venv/bin/python bench/notifications.py \
        [--deliveries 300] [--customers 200]

The database is created and migrated if needed; the bench's notification, entitlement and event rows are
replaced on each run.
"""

import argparse
import datetime as dt
import os
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/om_notify_bench")
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openmeter_site.settings")
os.environ["OPENMETER_WEBHOOK_ALLOW_PRIVATE"] = "1"


def create_database() -> None:
    base, name = DATABASE_URL.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


create_database()

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from catalog.models import Feature  # noqa: E402
from customers.models import Customer  # noqa: E402
from entitlements.models import Entitlement  # noqa: E402
from entitlements.services import GrantInput, UsagePeriodInput, entitlement_create, entitlement_value  # noqa: E402
from metering.models import Meter  # noqa: E402
from metering.postgres.store import EventRow, insert_events  # noqa: E402
from notifications.models import NotificationEvent  # noqa: E402
from notifications.services.channels import channel_create  # noqa: E402
from notifications.services.delivery import delivery_attempt  # noqa: E402
from notifications.services.evaluation import emit_invoice_event  # noqa: E402
from notifications.services.rules import Threshold, rule_create  # noqa: E402
from notifications.services.sources import metered_entitlements_qs, thresholds_evaluate_new_usage  # noqa: E402


def start_receiver() -> str:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def reset_rows() -> None:
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE notifications_notificationdeliveryattempt, notifications_notificationdelivery, "
            "notifications_notificationevent, notifications_notificationrule_channels, "
            "notifications_notificationrule_features, notifications_notificationrule, "
            "notifications_notificationchannel, notifications_evaluationcursor CASCADE"
        )
        cur.execute("TRUNCATE metering_event, metering_eventkey, metering_pendingevent, metering_rollup")
    for customer in Customer.objects.filter(key__startswith="bench-notify-"):
        for entitlement in Entitlement.objects.filter(customer=customer):
            entitlement.snapshots.all().delete()
            entitlement.resets.all().delete()
            entitlement.grants.all().delete()
            entitlement.delete()
        customer.subjects.all().delete()
        customer.delete()
    Feature.objects.filter(key="bench_notify").delete()
    Meter.objects.filter(slug="bench_notify").delete()


def bench_delivery(url: str, n: int) -> None:
    channel = channel_create(name="bench", url=url)
    rule_create(type="invoice.updated", name="bench", channel_ids=[channel.id])
    deliveries = []
    for i in range(n):  # tasks are not run (no on-commit execution outside a request): we attempt them below
        [event] = emit_invoice_event(invoice_payload={"id": f"inv-{i}", "status": "issued", "totals": {"total": "1"}},
                                     event_type="invoice.updated")
        deliveries.append(event.deliveries.get().id)
    body = NotificationEvent.objects.first().payload_json.encode()
    t0 = time.perf_counter()
    for _ in range(n):
        requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    for delivery_id in deliveries:
        delivery_attempt(delivery_id=delivery_id, expected_attempt=0)
    ours = time.perf_counter() - t0
    print(f"delivery: {n} signed deliveries with attempt log {ours / n * 1000:.2f} ms each ({n / ours:.0f}/s); "
          f"bare requests.post {bare / n * 1000:.2f} ms each ({n / bare:.0f}/s)")


def bench_evaluation(n_customers: int) -> None:
    now = timezone.now().replace(microsecond=0)
    start = now - dt.timedelta(days=1)
    meter = Meter.objects.create(slug="bench_notify", name="bench", aggregation="SUM", event_type="bench_notify",
                                 value_property="$.tokens")
    feature = Feature.objects.create(key="bench_notify", name="bench", meter=meter, meter_slug=meter.slug)
    for i in range(n_customers):
        customer = Customer.objects.create(key=f"bench-notify-{i}", name=f"bench {i}")
        entitlement_create(customer=customer, feature=feature, type="metered", measure_usage_from=start,
                           usage_period=UsagePeriodInput(interval="MONTH", anchor=start),
                           grants=[GrantInput(amount=Decimal(100), effective_at=start)], at=start)
    channel = channel_create(name="bench-eval", url="http://127.0.0.1:9/unused", disabled=True)
    rule_create(type="entitlements.balance.threshold", name="bench", channel_ids=[channel.id],
                thresholds=[Threshold("usage_percentage", Decimal(50)), Threshold("usage_percentage", Decimal(90))])
    insert_events([
        EventRow(id=f"b-{i}-{j}", source="bench", type="bench_notify", subject=f"bench-notify-{i}",
                 time=now - dt.timedelta(minutes=j + 1), data_json='{"tokens": 30}')
        for i in range(n_customers) for j in range(2)
    ])
    entitlements = list(metered_entitlements_qs(at=now).filter(customer__key__startswith="bench-notify-"))
    t0 = time.perf_counter()
    for entitlement in entitlements:
        entitlement_value(entitlement=entitlement, at=now)
    floor = time.perf_counter() - t0
    t0 = time.perf_counter()
    fired = thresholds_evaluate_new_usage(at=now)
    ours = time.perf_counter() - t0
    print(f"evaluation: {n_customers} entitlements after one batch, {len(fired)} thresholds fired (50% each): "
          f"{ours * 1000:.0f} ms ({ours / n_customers * 1000:.2f} ms per entitlement); "
          f"entitlement values alone {floor * 1000:.0f} ms ({floor / n_customers * 1000:.2f} ms each)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--customers", type=int, default=200)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    reset_rows()
    bench_delivery(start_receiver(), args.deliveries)
    bench_evaluation(args.customers)


if __name__ == "__main__":
    main()
