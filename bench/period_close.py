"""Period close: 10,000 customers, each subscribed to a plan with one flat fee and two usage rate cards, over
1,000,000 events (stored as ingest stores them, not folded: the meter queries read the raw tail), turned into draft
invoices by the scheduled job (`billing.collect_gathering_invoices`: it sends its batches of 500 customers to the
workers) after the subscription sync has put January's lines on the gathering invoices.

Each close runs on a fresh copy of the prepared data (`CREATE DATABASE ... TEMPLATE`), so the runs close the same
invoices:
  1. the tables as the load left them, never analyzed (autovacuum is off on these machines): the plan of a batched
     meter query (does a nested loop rescan the pending tail?), the batched meter queries alone, and the close by
     one worker in this process (the job run eagerly, its batches one after another), counting SQL queries;
     before it, a scaling check: customers with three times the lines and ten times the events per customer
     closed alone, to show that queries per invoice do not grow with lines or events;
  2. after ANALYZE: the batched meter queries alone, then the close by 1 Celery worker;
  3. after ANALYZE: the close by 2 Celery workers.
Prints wall times and invoices per second beside the batched meter queries alone and the load average; asserts
nothing.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/om_bench REDIS_URL=redis://127.0.0.1:6379/4 \
        .venv/bin/python bench/period_close.py [--customers 10000] [--events 1000000] [--reuse]

The database of DATABASE_URL holds the prepared data (created if missing, migrated; the bench's own rows,
customers `bench-close-*`, plans and meters `bench_close*`, are replaced unless `--reuse` finds them); the closes
run in `<name>_run`, dropped at the end.
"""

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openmeter_site.settings")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from _support import load_average  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from billing.models import BillingProfile, CustomerOverride, Invoice  # noqa: E402
from billing.models import InvoiceStatus as S  # noqa: E402
from billing.services import jobs  # noqa: E402
from billing.services.profiles import ProfileApps, billing_profile_create, billing_profile_default_ensure  # noqa: E402
from billing.services.subscription_sync import subscriptions_sync_all  # noqa: E402
from billing.tasks import BATCH  # noqa: E402
from catalog.models import Feature, Plan  # noqa: E402
from catalog.services.plans import PhaseInput, PlanInput, plan_create, plan_publish  # noqa: E402
from catalog.services.ratecards import RateCardInput  # noqa: E402
from customers.models import Customer, CustomerSubject  # noqa: E402
from metering.event_store import QuerySpec  # noqa: E402
from metering.models import Meter  # noqa: E402
from metering.postgres.query import meter_usage_by_customer, rollup_statement  # noqa: E402
from metering.postgres.store import EventRow, insert_events  # noqa: E402
from openmeter_site.celery import app as celery_app  # noqa: E402
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
        cur.execute("DELETE FROM metering_eventkey WHERE source = %s", [PREFIX])
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
            RateCardInput(type="flat_fee", key=f"platform_fee_{k}", name=f"Platform fee {k}", billing_cadence="P1M",
                          price={"type": "flat", "amount": "49", "paymentTerm": "in_advance"}),
            RateCardInput(type="usage_based", key=f"tokens_{k}", name=f"Tokens {k}", feature_key=tokens.key,
                          billing_cadence="P1M", price={"type": "unit", "amount": "0.0001"}),
            RateCardInput(type="usage_based", key=f"api_calls_{k}", name=f"API calls {k}", feature_key=calls.key,
                          billing_cadence="P1M", price=GRADUATED),
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


WIDE_CUSTOMERS = 50  # the scaling check's customers: 9 lines each, 10x the events per customer
STATISTICS_TABLES = ("metering_event", "metering_pendingevent", "billing_invoice", "billing_invoiceline")


def statistics_state() -> str:
    """Which of the tables the close reads have planner statistics (ANALYZE run at least once since created)."""
    with connection.cursor() as cur:
        cur.execute("SELECT t, EXISTS (SELECT 1 FROM pg_stats WHERE tablename = t) FROM unnest(%s::text[]) AS t "
                    "ORDER BY t", [list(STATISTICS_TABLES)])
        rows = cur.fetchall()
    return ", ".join(f"{name} {'yes' if present else 'none'}" for name, present in rows)


def forget_statistics() -> None:
    """The planner's view of freshly loaded tables: no statistics, sizes unknown (as before any ANALYZE or VACUUM;
    migrations analyze some tables while they are small)."""
    with connection.cursor() as cur:
        cur.execute("DELETE FROM pg_statistic WHERE starelid IN "
                    "(SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)")
        cur.execute("UPDATE pg_class SET reltuples = -1, relpages = 0, relallvisible = 0 "
                    "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')")


def analyze() -> float:
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return time.perf_counter() - started


# --- the data: prepared once, closed in copies -----------------------------------------------------------------

def prepare(n_customers: int, n_events: int, reuse: bool) -> None:
    call_command("migrate", verbosity=0)
    main_rows = Customer.objects.filter(key__startswith=f"{PREFIX}-a-", deleted_at__isnull=True)
    if reuse and main_rows.count() == n_customers and Invoice.objects.filter(status=S.GATHERING).exists():
        print(f"setup: reusing {n_customers} customers and their events", flush=True)
        return
    reset()
    sandbox = billing_profile_default_ensure().invoicing_app
    profile = billing_profile_create(name=PREFIX, supplier={"name": "Bench"}, default=False,
                                     workflow={"invoicing": {"autoAdvance": False}},
                                     apps=ProfileApps(sandbox.pk, sandbox.pk, sandbox.pk))
    tokens, calls = meters()
    rows = customers(n_customers, "a", profile)
    wide = customers(WIDE_CUSTOMERS, "b", profile)
    print(f"setup: {n_customers} customers, inserting {n_events:,} events ...", flush=True)
    ingest_s = events(rows, n_events)
    events(wide, n_events // n_customers * 10 * WIDE_CUSTOMERS)
    print(f"setup: events stored in {ingest_s:.1f}s; subscribing ...", flush=True)
    started = time.perf_counter()
    subscribe(rows, plan("bench_close", tokens, calls, copies=1))
    subscribe(wide, plan("bench_close_wide", tokens, calls, copies=3))
    synced = subscriptions_sync_all(at=START + dt.timedelta(minutes=5))
    print(f"setup: {synced} subscriptions created and synced (January's lines) in {time.perf_counter() - started:.0f}s",
          flush=True)


def admin_url(name: str) -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{name}"


def fresh_copy(template: str, name: str) -> float:
    """`name` as a copy of `template` (no connection may be open to the template meanwhile)."""
    connection.close()
    started = time.perf_counter()
    with psycopg.connect(admin_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    use_database(name)
    return time.perf_counter() - started


def use_database(name: str) -> None:
    connection.close()
    connection.settings_dict["NAME"] = name


def drop(name: str) -> None:
    connection.close()
    with psycopg.connect(admin_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


# --- what is timed ---------------------------------------------------------------------------------------------

def main_subjects() -> list[dict[str, str]]:
    """subject → customer of the main customers, in the batches the close takes them."""
    rows = list(Customer.objects.filter(key__startswith=f"{PREFIX}-a-").order_by("pk").values_list("key", "pk"))
    return [{f"{key}-api": pk for key, pk in rows[i : i + BATCH]} for i in range(0, len(rows), BATCH)]


def meter_features() -> tuple[Feature, Feature]:
    return (Feature.objects.select_related("meter").get(key="bench_close_tokens"),
            Feature.objects.select_related("meter").get(key="bench_close_calls"))


def meter_queries(batches: list[dict[str, str]]) -> float:
    """The close's batched meter queries alone: per batch of customers, one query per meter."""
    started = time.perf_counter()
    for subjects in batches:
        for feature in meter_features():
            meter_usage_by_customer(meter=feature.meter, subject_customers=subjects, start=START, end=END)
    return time.perf_counter() - started


def _nodes(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def tail_plan(subjects: dict[str, str]) -> str:
    """How the batched query of one batch reads the raw tail (EXPLAIN ANALYZE): a sequential scan of the pending
    queue or the event table run more than once, or rows a join filter threw away, is a nested loop rescanning the
    tail (an index or bitmap lookup per event is not)."""
    tokens, _ = meter_features()
    spec = QuerySpec(meter=tokens.meter, start=START, end=END, subjects=list(subjects), group_by=("customer_id",),
                     subject_customers=subjects)
    statement = rollup_statement(spec)
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement.text, statement.params)
        nodes = list(_nodes(cur.fetchone()[0][0]["Plan"]))
    tail = [n for n in nodes if n.get("Relation Name", "").startswith(("metering_pendingevent", "metering_event"))]
    rescans = [n for n in tail if n["Node Type"] == "Seq Scan" and n["Actual Loops"] > 1]
    removed = sum(n.get("Rows Removed by Join Filter", 0) for n in nodes)
    reads = ", ".join(f"{n['Node Type']} on {n['Relation Name']} x{n['Actual Loops']}" for n in tail)
    verdict = "a nested loop rescans the tail" if rescans or removed else "no nested loop rescans the tail"
    return f"{verdict} ({reads}; rows removed by join filters: {removed})"


def close_in_process() -> tuple[float, int, int]:
    """What one worker does with the scheduled job: its batches one after another, in this process."""
    with count_queries() as queries:
        started = time.perf_counter()
        for batch in jobs.due_customer_batches(at=CLOSE_AT, size=BATCH):
            jobs.close_batch(batch, at=CLOSE_AT)
        elapsed = time.perf_counter() - started
    return elapsed, drafts_made(), queries[0]


def close_batch_in_process(rows: list[str]) -> tuple[float, int, int]:
    with count_queries() as queries:
        started = time.perf_counter()
        closed = jobs.close_batch(rows, at=CLOSE_AT)
        elapsed = time.perf_counter() - started
    return elapsed, closed.drafts, queries[0]


def bench_queue() -> str:
    """A Celery queue of this run's own: its tasks (the close's batches, the outbox relay's kicks after each commit)
    reach only its workers."""
    queue = f"bench-close-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = queue
    return queue


def delete_queue(queue: str) -> None:
    """What the run's workers left in its queue (kicks of the outbox relay) goes with it."""
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)


def drafts_made() -> int:
    return Invoice.objects.exclude(status=S.GATHERING).count()


def close_by_workers(database: str, workers: int, expected: int) -> float:
    """The scheduled job sent to `workers` Celery worker processes (one task at a time each); timed from sending it
    until every due customer has its draft."""
    queue = bench_queue()
    env = {**os.environ, "DATABASE_URL": admin_url(database), "DJANGO_SETTINGS_MODULE": "openmeter_site.settings",
           "CELERY_TASK_ALWAYS_EAGER": "0", "CELERY_TASK_DEFAULT_QUEUE": queue}
    names = [f"{queue}-{i}@bench" for i in range(workers)]
    log = Path(tempfile.gettempdir()) / f"{queue}.log"
    print(f"   workers' log: {log}", flush=True)
    processes = [subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "openmeter_site", "worker", "--pool", "solo", "-Q", queue, "-n", name,
         "--loglevel", "WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT) for name in names]
    try:
        deadline = time.monotonic() + 60
        while len(celery_app.control.ping(destination=names, timeout=0.5)) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("the Celery workers did not start")
        started = time.perf_counter()
        celery_app.send_task("billing.collect_gathering_invoices", kwargs={"at": CLOSE_AT.isoformat()}, queue=queue)
        while drafts_made() < expected:
            if time.perf_counter() - started > 1800:
                raise RuntimeError(f"only {drafts_made()} of {expected} drafts after 30 minutes")
            time.sleep(0.1)
        return time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        delete_queue(queue)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the prepared data of a previous run of this size")
    args = parser.parse_args()

    template = connection.settings_dict["NAME"]
    with psycopg.connect(admin_url("postgres"), autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone():
            admin.execute(f'CREATE DATABASE "{template}"')
    prepare(args.customers, args.events, args.reuse)
    run = f"{template}_run"
    print(f"\nperiod close, {args.customers:,} customers x (1 flat fee + 2 usage rate cards), {args.events:,} events "
          f"in the raw tail, batches of {BATCH} customers", flush=True)

    # 1. never analyzed
    copy_s = fresh_copy(template, run)
    forget_statistics()
    print(f"1. tables as loaded (copy made in {copy_s:.0f}s); statistics: {statistics_state()}", flush=True)
    batches = main_subjects()
    print(f"   plan of one batch's meter query: {tail_plan(batches[0])}", flush=True)
    unanalyzed_meter_s = meter_queries(batches)
    print(f"   batched meter queries alone (2 meters x {args.customers:,} customers): {unanalyzed_meter_s:.2f}s",
          flush=True)
    queue = bench_queue()  # the outbox relay's kicks after each commit, deleted after the close
    wide = list(Customer.objects.filter(key__startswith=f"{PREFIX}-b-").order_by("pk").values_list("pk", flat=True))
    wide_s, wide_made, wide_queries = close_batch_in_process(wide)
    print(f"   scaling check, {wide_made} customers x 9 lines, 10x events each: {wide_s:.2f}s, "
          f"{wide_queries} SQL queries ({wide_queries / max(wide_made, 1):.2f} per invoice)", flush=True)
    before = load_average()
    elapsed, made, queries = close_in_process()
    delete_queue(queue)
    made -= wide_made
    print(f"   close, one worker (in process): {made:,} drafts in {elapsed:.1f}s ({made / elapsed:.0f} invoices/s), "
          f"{queries:,} SQL queries ({queries / max(made, 1):.2f} per invoice)", flush=True)
    print(f"   load: {before}; after: {load_average()}", flush=True)
    expected = made + wide_made

    # 2. analyzed, 1 worker
    fresh_copy(template, run)
    analyze_s = analyze()
    print(f"2. ANALYZE took {analyze_s:.1f}s; statistics: {statistics_state()}", flush=True)
    print(f"   plan of one batch's meter query: {tail_plan(batches[0])}", flush=True)
    meter_s = meter_queries(batches)
    print(f"   batched meter queries alone: {meter_s:.2f}s", flush=True)
    before = load_average()
    one_s = close_by_workers(run, 1, expected)
    print(f"   close, 1 Celery worker: {expected:,} drafts in {one_s:.1f}s ({expected / one_s:.0f} invoices/s)",
          flush=True)
    print(f"   load: {before}; after: {load_average()}", flush=True)

    # 3. analyzed, 2 workers
    fresh_copy(template, run)
    analyze()
    before = load_average()
    two_s = close_by_workers(run, 2, expected)
    print(f"3. close, 2 Celery workers: {expected:,} drafts in {two_s:.1f}s ({expected / two_s:.0f} invoices/s)",
          flush=True)
    print(f"   load: {before}; after: {load_average()}", flush=True)
    sample = Invoice.objects.filter(customer__key=f"{PREFIX}-a-0").first()
    if sample is not None:
        print(f"sample invoice {sample.number}: total {sample.total.normalize()} USD")
    drop(run)

    print(f"\nsummary ({args.customers:,} customers, {args.events:,} events): batched meter queries alone "
          f"{meter_s:.1f}s (un-analyzed {unanalyzed_meter_s:.1f}s); close: 1 worker {one_s:.1f}s [target <= 60s], "
          f"2 workers {two_s:.1f}s ({one_s / two_s:.2f}x), un-analyzed 1 worker in process {elapsed:.1f}s; "
          f"{queries / max(made, 1):.2f} SQL queries per invoice (9 lines, 10x events: "
          f"{wide_queries / max(wide_made, 1):.2f})")


if __name__ == "__main__":
    main()
