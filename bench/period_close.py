"""Period close: 1,000 customers, each subscribed to a plan with one flat fee and two usage rate cards, over
1,000,000 events, turned into draft invoices by one worker (`billing.services.jobs.collect_gathering_invoices`, as
the beat job runs it) after the subscription sync has put January's lines on the gathering invoices.

Prints the wall time, invoices per second and SQL queries per invoice, beside a baseline measured in the same run:
the two batched meter queries alone (the metering share of the work), and a second close with three times the
lines and ten times the events per customer, to show that queries per invoice do not grow with lines or events.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/om_bench REDIS_URL=redis://127.0.0.1:6379/4 \
        .venv/bin/python bench/period_close.py \
        [--customers 1000] [--events 1000000]

The database is migrated; the bench's own rows (customers `bench-close-*`, plans and meters `bench_close*`) are
replaced on each run, other data is left alone.
"""

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openmeter_site.settings")

import django  # noqa: E402

django.setup()

from _support import load_average  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from billing.models import BillingProfile, CustomerOverride, Invoice  # noqa: E402
from billing.models import InvoiceStatus as S  # noqa: E402
from billing.services import jobs  # noqa: E402
from billing.services.profiles import ProfileApps, billing_profile_create, billing_profile_default_ensure  # noqa: E402
from billing.services.subscription_sync import subscriptions_sync_all  # noqa: E402
from catalog.models import Feature, Plan  # noqa: E402
from catalog.services.plans import PhaseInput, PlanInput, plan_create, plan_publish  # noqa: E402
from customers.models import Customer, CustomerSubject  # noqa: E402
from metering.models import Meter  # noqa: E402
from metering.postgres.query import meter_usage_by_customer  # noqa: E402
from metering.postgres.store import EventRow, insert_events  # noqa: E402
from subscriptions.models import Subscription  # noqa: E402
from subscriptions.services.lifecycle import SubscriptionOptions, subscription_create  # noqa: E402

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
CLOSE_AT = END + dt.timedelta(hours=1)  # after the PT1H collection grace period
PREFIX = "bench-close"
GRADUATED = {"type": "tiered", "mode": "graduated", "tiers": [
    {"upToAmount": "100", "flatPrice": {"type": "flat", "amount": "5"}, "unitPrice": {"type": "unit", "amount": "0.05"}},
    {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "0.02"}},
    {"unitPrice": {"type": "unit", "amount": "0.01"}},
]}


@contextmanager
def count_queries() -> Iterator[list[int]]:
    counter = [0]

    def wrapper(execute: Callable, sql: str, params: object, many: bool, context: object) -> object:
        counter[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield counter


def reset() -> None:
    customers = Customer.objects.filter(key__startswith=PREFIX)
    Subscription.objects.filter(customer__in=customers).delete()
    Plan.objects.filter(key__startswith="bench_close").delete()
    invoices = Invoice.objects.filter(customer__in=customers)
    invoices.filter(status=S.GATHERING).delete()
    invoices.delete()
    CustomerOverride.objects.filter(customer__in=customers).delete()
    CustomerSubject.objects.filter(customer__in=customers).delete()
    customers.delete()
    BillingProfile.objects.filter(name=PREFIX).delete()
    Feature.objects.filter(key__startswith="bench_close").delete()
    with connection.cursor() as cur:
        cur.execute("DELETE FROM metering_pendingevent WHERE seq IN "
                    "(SELECT seq FROM metering_event WHERE type LIKE 'bench_close%%')")
        cur.execute("DELETE FROM metering_event WHERE type LIKE 'bench_close%%'")
    Meter.objects.filter(slug__startswith="bench_close").delete()


def meters() -> tuple[Feature, Feature]:
    tokens = Meter.objects.create(slug="bench_close_tokens", name="tokens", aggregation="SUM",
                                  event_type="bench_close_tokens", value_property="$.tokens", group_by={})
    calls = Meter.objects.create(slug="bench_close_calls", name="calls", aggregation="COUNT",
                                 event_type="bench_close_calls", group_by={})
    return (Feature.objects.create(key="bench_close_tokens", name="tokens", meter=tokens, meter_slug=tokens.slug),
            Feature.objects.create(key="bench_close_calls", name="calls", meter=calls, meter_slug=calls.slug))


def customers(n: int, tag: str, profile: BillingProfile) -> list[Customer]:
    rows = Customer.objects.bulk_create(
        [Customer(key=f"{PREFIX}-{tag}-{i}", name=f"Bench {tag} {i}", currency="USD") for i in range(n)])
    CustomerSubject.objects.bulk_create([CustomerSubject(customer=c, subject_key=f"{c.key}-api") for c in rows])
    CustomerOverride.objects.bulk_create([CustomerOverride(customer=c, billing_profile=profile) for c in rows])
    return rows


def events(rows: list[Customer], total: int) -> float:
    per_customer = total // len(rows) // 2
    period = (END - START).total_seconds()
    started = time.perf_counter()
    batch: list[EventRow] = []
    for c in rows:
        for j in range(per_customer):
            at = START + dt.timedelta(seconds=(j * 7919 % per_customer) * period / per_customer)
            subject = f"{c.key}-api"
            batch.append(EventRow(f"{c.key}-t{j}", PREFIX, "bench_close_tokens", subject, at,
                                  json.dumps({"tokens": 10 + j % 90})))
            batch.append(EventRow(f"{c.key}-c{j}", PREFIX, "bench_close_calls", subject, at, None))
            if len(batch) >= 20000:
                insert_events(batch)
                batch = []
    insert_events(batch)
    return time.perf_counter() - started


def plan(key: str, tokens: Feature, calls: Feature, copies: int) -> str:
    cards = []
    for k in range(copies):
        cards += [
            {"type": "flat_fee", "key": f"platform_fee_{k}", "name": f"Platform fee {k}", "billingCadence": "P1M",
             "price": {"type": "flat", "amount": "49", "paymentTerm": "in_advance"}},
            {"type": "usage_based", "key": f"tokens_{k}", "name": f"Tokens {k}", "featureKey": tokens.key,
             "billingCadence": "P1M", "price": {"type": "unit", "amount": "0.0001"}},
            {"type": "usage_based", "key": f"api_calls_{k}", "name": f"API calls {k}", "featureKey": calls.key,
             "billingCadence": "P1M", "price": GRADUATED},
        ]
    data = PlanInput(name=key, billing_cadence="P1M",
                     phases=[PhaseInput(key="main", name="Main", duration=None, rate_cards=cards)])
    created = plan_create(key=key, data=data)
    plan_publish(plan_id=created.pk, at=START - dt.timedelta(days=1))
    return key


def subscribe(rows: list[Customer], plan_key: str) -> None:
    for c in rows:
        subscription_create(customer=c.pk, plan_key=plan_key, timing=START,
                            options=SubscriptionOptions(billing_anchor=START), at=START)


STATISTICS_TABLES = ("metering_event", "metering_pendingevent", "metering_rollup_day", "billing_invoiceline")


def statistics_state() -> str:
    """Which of the tables the close reads have planner statistics (ANALYZE run at least once since created)."""
    with connection.cursor() as cur:
        cur.execute("SELECT t, EXISTS (SELECT 1 FROM pg_stats WHERE tablename = t) FROM unnest(%s::text[]) AS t "
                    "ORDER BY t", [list(STATISTICS_TABLES)])
        rows = cur.fetchall()
    return ", ".join(f"{name} {'yes' if present else 'none'}" for name, present in rows)


def meter_queries(subjects: dict[str, str], tokens: Feature, calls: Feature) -> float:
    started = time.perf_counter()
    for feature in (tokens, calls):
        meter_usage_by_customer(meter=feature.meter, subject_customers=subjects, start=START, end=END)
    return time.perf_counter() - started


def close(rows: list[Customer]) -> tuple[float, int, int]:
    with count_queries() as queries:
        started = time.perf_counter()
        jobs.collect_gathering_invoices(at=CLOSE_AT, limit=len(rows))
        elapsed = time.perf_counter() - started
    made = Invoice.objects.filter(customer__in=rows, status=S.DRAFT_MANUAL_APPROVAL_NEEDED).count()
    return elapsed, made, queries[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    reset()
    sandbox = billing_profile_default_ensure().invoicing_app
    profile = billing_profile_create(name=PREFIX, supplier={"name": "Bench"}, default=False,
                                     workflow={"invoicing": {"autoAdvance": False}},
                                     apps=ProfileApps(sandbox.pk, sandbox.pk, sandbox.pk))
    tokens, calls = meters()
    main_rows = customers(args.customers, "a", profile)
    small = max(args.customers // 20, 10)
    wide_rows = customers(small, "b", profile)
    print(f"setup: {args.customers} customers, inserting {args.events:,} events ...", flush=True)
    ingest_s = events(main_rows, args.events)
    events(wide_rows, args.events // args.customers * 10 * small)
    print(f"setup: events stored in {ingest_s:.1f}s; subscribing ...", flush=True)
    subscribe(main_rows, plan("bench_close", tokens, calls, copies=1))
    subscribe(wide_rows, plan("bench_close_wide", tokens, calls, copies=3))
    started = time.perf_counter()
    synced = subscriptions_sync_all(at=START + dt.timedelta(minutes=5))
    sync_s = time.perf_counter() - started

    # baseline: the batched meter queries alone (what the close spends on metering), first on the tables as the
    # load left them (a fresh database: never analyzed; autovacuum is off on these machines), then analyzed
    subjects = {f"{c.key}-api": c.pk for c in main_rows}
    stats_before = statistics_state()
    unanalyzed_s = meter_queries(subjects, tokens, calls)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    stats_after = statistics_state()
    meter_s = meter_queries(subjects, tokens, calls)

    load_before = load_average()
    elapsed, made, queries = close(main_rows)
    wide_elapsed, wide_made, wide_queries = close(wide_rows)
    load_after = load_average()

    sample = Invoice.objects.filter(customer__in=main_rows).order_by("customer__key").first()
    print()
    print(f"before the close: {load_before}; after: {load_after}")
    print(f"subscription sync (January's lines): {synced} subscriptions in {sync_s:.2f}s")
    print(f"period close, {args.customers} customers x 3 lines, {args.events:,} events, one worker")
    print(f"  draft invoices created : {made} in {elapsed:.2f}s ({made / elapsed:.0f} invoices/s)  [target <= 30s]")
    print(f"  SQL queries            : {queries} total, {queries / max(made, 1):.1f} per invoice")
    print(f"  baseline: batched meter queries alone (2 meters x {args.customers} customers): {meter_s:.2f}s "
          f"(statistics: {stats_after})")
    print(f"  regression row: the same queries before ANALYZE: {unanalyzed_s:.2f}s (statistics: {stats_before})")
    print(f"scaling check, {small} customers x 9 lines, 10x events per customer")
    print(f"  draft invoices created : {wide_made} in {wide_elapsed:.2f}s")
    print(f"  SQL queries            : {wide_queries} total, {wide_queries / max(wide_made, 1):.1f} per invoice")
    if sample is not None:
        print(f"sample invoice {sample.number}: total {sample.total.normalize()} USD")


if __name__ == "__main__":
    main()
