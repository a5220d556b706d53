"""Back office pages at the bench data size: every page the admin links to, timed in process (Django's view, its
queries and its template; no network), on 1,000 customers subscribed to a plan, 1,000,000 events, 1,000 draft
invoices, 1,000 entitlements, plus one of everything else (tests/admin/rich_data.py, built through the API).

Prints each page kind's time (median of `--repeat` requests, the first excluded) and SQL queries, slowest first, and
how many pages take over 2 s. Nothing is asserted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/om_bench REDIS_URL=redis://127.0.0.1:6379/4 \\
        .venv/bin/python bench/admin_pages.py [--customers 1000] [--events 1000000] [--repeat 3]

The data is the period-close bench's (`bench/period_close.py`, customers `bench-close-*`): made when missing, else
reused as it is (its invoices then are whatever its last run left).
"""

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import period_close as close_bench  # sets Django up, as every bench script does
from _support import load_average
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from billing.models import Invoice
from billing.services import jobs
from billing.services.profiles import ProfileApps, billing_profile_create, billing_profile_default_ensure
from billing.services.subscription_sync import subscriptions_sync_all
from customers.models import Customer
from entitlements.models import Entitlement
from metering.models import Event
from openmeter_site.core.models import ApiKey
from tests.admin.rich_data import RichData
from tests.admin.test_crawl import crawl, pattern

HOST = "localhost"
SLOW = 2.0


def bulk_data(n_customers: int, n_events: int) -> None:
    """The period-close bench's customers, events, subscriptions and draft invoices; a metered entitlement each."""
    Entitlement.objects.filter(customer__key__startswith=close_bench.PREFIX).delete()  # the period-close reset's rows
    close_bench.reset()
    sandbox = billing_profile_default_ensure().invoicing_app
    profile = billing_profile_create(name=close_bench.PREFIX, supplier={"name": "Bench"}, default=False,
                                     workflow={"invoicing": {"autoAdvance": False}},
                                     apps=ProfileApps(sandbox.pk, sandbox.pk, sandbox.pk))
    tokens, calls = close_bench.meters()
    rows = close_bench.customers(n_customers, "a", profile)
    print(f"setup: {n_customers} customers, inserting {n_events:,} events ...", flush=True)
    close_bench.events(rows, n_events)
    close_bench.subscribe(rows, close_bench.plan("bench_close", tokens, calls, copies=1))
    subscriptions_sync_all(at=close_bench.START + dt.timedelta(minutes=5))
    jobs.collect_gathering_invoices(at=close_bench.CLOSE_AT, limit=n_customers)
    api = api_client()
    for customer in rows:
        api.post(f"/api/v2/customers/{customer.pk}/entitlements", {
            "type": "metered", "featureKey": calls.key, "usagePeriod": {"interval": "MONTH"}}, format="json")
    with connection.cursor() as cur:
        cur.execute("ANALYZE")


def api_client() -> APIClient:
    api = APIClient(SERVER_NAME=HOST)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue('bench-admin')[1]}")
    return api


def operator() -> Client:
    user, _ = User.objects.get_or_create(username="bench-operator", defaults={"is_staff": True,
                                                                             "is_superuser": True})
    client = Client(SERVER_NAME=HOST)
    client.force_login(user)
    return client


def timed(client: Client, url: str, repeat: int) -> tuple[float, int, int]:
    times, queries, status = [], 0, 0
    for _ in range(repeat + 1):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            status = client.get(url).status_code
            times.append(time.perf_counter() - started)
        queries = len(captured.captured_queries)
    return statistics.median(times[1:]), queries, status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = True  # the rich data's webhook channel points at loopback

    call_command("migrate", verbosity=0)
    existing = Customer.objects.filter(key__startswith=close_bench.PREFIX, deleted_at__isnull=True).count()
    if existing < args.customers:
        bulk_data(args.customers, args.events)
    if not Customer.objects.filter(key="bench_admin-acme", deleted_at__isnull=True).exists():
        RichData(api_client(), prefix="bench_admin").build()
    print(f"data: {Customer.objects.count():,} customers, {Invoice.objects.count():,} invoices, "
          f"{Entitlement.objects.count():,} entitlements; "
          f"{Event.objects.count():,} events", flush=True)

    client = operator()
    load_before = load_average()
    pages, failures = crawl(client, "/admin/")
    results = []
    for url in pages:
        seconds, queries, status = timed(client, url, args.repeat)
        results.append((seconds, queries, status, url))
    load_after = load_average()

    results.sort(reverse=True)
    print()
    print(f"before: {load_before}; after: {load_after}")
    print(f"{len(results)} pages (one or a few of each kind), median of {args.repeat} requests after a first one")
    print(f"{'ms':>8} {'queries':>7} {'status':>6}  page")
    for seconds, queries, status, url in results:
        print(f"{seconds * 1000:8.1f} {queries:7d} {status:6d}  {pattern(url)}")
    times = [r[0] for r in results]
    over = [r[3] for r in results if r[0] > SLOW]
    print()
    print(f"p50 {statistics.median(times) * 1000:.0f} ms, slowest {max(times) * 1000:.0f} ms "
          f"({pattern(results[0][3])}); over {SLOW:.0f} s: {len(over)}; 5xx: {len(failures)}")


if __name__ == "__main__":
    main()
