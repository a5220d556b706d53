"""Entitlement value latency: 1,000,000 events in the current period, 5 grants, through the HTTP API.

Prints p50/p99 of `GET /api/v2/customers/{c}/entitlements/{feature}/value` (rollups + snapshots) beside the
time of recomputing the same value from raw events in the same run (engine from measureUsageFrom, usage from
a scan of the event table), and beside two floors measured in the same rounds (a trivial authenticated endpoint
and a 404). The client is what a backend checking entitlements on its hot path uses: one keep-alive HTTP/1.1
connection (`http.client`, which costs little itself), to gunicorn with gthread workers as `bin/run` serves.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/om_bench .venv/bin/python bench/entitlement_value.py \
        [--events 1000000] [--requests 1000]

The database is migrated and the bench's own rows are replaced on each run (meter `bench_tokens`, customer
`bench-customer`); other data is left alone.
"""

import argparse
import datetime as dt
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openmeter_site.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from catalog.models import Feature  # noqa: E402
from customers.models import Customer, CustomerSubject  # noqa: E402
from entitlements import balance, engine  # noqa: E402
from entitlements.models import BalanceSnapshot, Entitlement, Grant, UsageReset  # noqa: E402
from entitlements.services import GrantInput, UsagePeriodInput, entitlement_create, grant_create  # noqa: E402
from metering.models import Meter  # noqa: E402
from metering.postgres.query import QuerySpec, run_raw_query  # noqa: E402
from metering.postgres.store import EventRow, insert_events  # noqa: E402
from openmeter_site.core.models import ApiKey  # noqa: E402

SUBJECTS = ["bench-customer", "bench-api-1", "bench-api-2"]


def reset_bench_rows() -> None:
    customer = Customer.objects.filter(key="bench-customer").first()
    if customer is not None:
        ents = Entitlement.objects.filter(customer=customer)
        BalanceSnapshot.objects.filter(entitlement__in=ents).delete()
        UsageReset.objects.filter(entitlement__in=ents).delete()
        Grant.objects.filter(entitlement__in=ents).delete()
        ents.delete()
        CustomerSubject.objects.filter(customer=customer).delete()
        customer.delete()
    Feature.objects.filter(key="bench_tokens").delete()
    with connection.cursor() as cur:
        cur.execute("DELETE FROM metering_event WHERE type = 'bench_request'")
        cur.execute("DELETE FROM metering_eventkey WHERE source = 'bench'")
    Meter.objects.filter(slug="bench_tokens").delete()


def setup(n_events: int, now: dt.datetime) -> tuple[Entitlement, dt.datetime]:
    meter = Meter.objects.create(slug="bench_tokens", name="bench", aggregation="SUM", event_type="bench_request",
                                 value_property="$.tokens", group_by={"model": "$.model"})
    feature = Feature.objects.create(key="bench_tokens", name="bench", meter=meter, meter_slug=meter.slug,
                                     meter_group_by_filters={"model": "gpt-4"})
    customer = Customer.objects.create(key="bench-customer", name="Bench")
    for s in SUBJECTS[1:]:
        CustomerSubject.objects.create(customer=customer, subject_key=s)
    anchor = (now - dt.timedelta(days=15)).replace(second=0, microsecond=0)
    measure_from = anchor - dt.timedelta(days=62)
    entitlement = entitlement_create(
        customer=customer, feature=feature, type="metered", usage_period=UsagePeriodInput("MONTH", anchor),
        measure_usage_from=measure_from, at=measure_from, active_from=measure_from,
    )
    grants = [
        GrantInput(amount=Decimal(500_000), effective_at=anchor, priority=1, expiration_duration="DAY",
                   expiration_count=5),
        GrantInput(amount=Decimal(1_000_000), effective_at=measure_from, priority=2),
        GrantInput(amount=Decimal(100_000), effective_at=measure_from, priority=3,
                   recurrence=UsagePeriodInput("WEEK", anchor)),
        GrantInput(amount=Decimal(2_000_000), effective_at=measure_from, priority=5, max_rollover_amount=Decimal(0)),
        GrantInput(amount=Decimal(250_000), effective_at=measure_from, priority=4, min_rollover_amount=Decimal(1000)),
    ]
    for g in grants:
        grant_create(entitlement=entitlement, data=g, at=measure_from)
    span = (now - anchor).total_seconds()
    batch: list[EventRow] = []
    t0 = time.perf_counter()
    for i in range(n_events):
        at = anchor + dt.timedelta(seconds=span * i / n_events)
        model = "gpt-4" if i % 10 else "gpt-3"
        batch.append(EventRow(id=f"b{i}", source="bench", type="bench_request", subject=SUBJECTS[i % 3], time=at,
                              data_json=json.dumps({"tokens": i % 7 + 1, "model": model})))
        if len(batch) == 20_000:
            insert_events(batch)
            batch = []
    # some usage in the two earlier periods, so their boundaries carry balances
    batch += [EventRow(id=f"old{i}", source="bench", type="bench_request", subject="bench-api-1",
                       time=measure_from + dt.timedelta(hours=7 * i + 1), data_json=json.dumps({"tokens": 900,
                                                                                             "model": "gpt-4"}))
              for i in range(200)]
    insert_events(batch)
    print(f"inserted {n_events:,} events in {time.perf_counter() - t0:.1f}s")
    fold_rollups()
    return entitlement, anchor


def fold_rollups() -> None:
    """With the rollup-aware meter query (metering.postgres.fold), fold every pending event first."""
    try:
        from metering.postgres.fold import fold_all
    except ImportError:
        print("metering.postgres.fold not present: meter_usage reads raw events")
        return
    t0 = time.perf_counter()
    total = 0
    while folded := fold_all():
        total += folded
    print(f"folded {total:,} events into rollups in {time.perf_counter() - t0:.1f}s")
    with connection.cursor() as cur:  # what autovacuum does soon after: the pending table was emptied
        cur.execute("VACUUM ANALYZE metering_pendingevent")
        cur.execute("ANALYZE")


def recompute_from_raw(entitlement: Entitlement, at: dt.datetime) -> tuple[float, engine.State]:
    """The baseline: no snapshot, usage from a scan of the raw events for every phase."""
    feature = entitlement.feature
    subjects = entitlement.customer.subject_keys()

    def usage(start: dt.datetime, end: dt.datetime) -> Decimal:
        rows = run_raw_query(QuerySpec(meter=feature.meter, start=start, end=end, subjects=subjects,
                                       group_filters={"model": ["gpt-4"]}))
        return sum((r.value for r in rows), Decimal(0))

    t0 = time.perf_counter()
    inputs = balance.load_inputs(entitlement, entitlement.measure_usage_from)
    resets = inputs.resets
    start = engine.State(at=entitlement.measure_usage_from, period_start=entitlement.measure_usage_from)
    timeline = engine.reset_timeline(usage_period=balance.usage_period(entitlement), manual=resets,
                                     preserve_overage_at_reset=False, start=start.at, until=at)
    result = engine.run(state=start, until=engine.ceil_minute(at), grants=inputs.grants,
                        resets=timeline, usage=usage)
    return time.perf_counter() - t0, result.state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve() -> tuple[subprocess.Popen, int]:
    """gunicorn as `bin/run` serves it: gthread workers, which keep client connections alive."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "openmeter_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--worker-class", "gthread", "--threads", "4", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "DEBUG": "0"}, stderr=subprocess.DEVNULL,  # no "Not Found" line per 404
    )
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


class KeepAliveClient:
    """One reused HTTP/1.1 connection (`http.client`), as a backend checking entitlements on its hot path holds:
    the client itself costs little (python `requests` adds 2-3 ms per call on this machine)."""

    def __init__(self, port: int, key: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.headers = {"Authorization": f"Bearer {key}", "Connection": "keep-alive"}

    def get(self, path: str) -> tuple[int, bytes]:
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def timed(self, path: str, status: int = 200) -> float:
        t0 = time.perf_counter()
        code, _ = self.get(path)
        elapsed = (time.perf_counter() - t0) * 1000
        assert code == status, code
        return elapsed

    def interleaved(self, paths: dict[str, tuple[str, int]], n: int) -> dict[str, list[float]]:
        """`n` rounds of one request to each path: every figure sees the same load on the machine."""
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(n):
            for name, (path, status) in paths.items():
                samples[name].append(self.timed(path, status))
        return samples


def statements_so_far() -> int:
    """Transactions of this database so far (autocommit: one per statement), as PostgreSQL counts them."""
    with connection.cursor() as cur:
        cur.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        return cur.fetchone()[0]


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def in_process_cpu_ms(raw_key: str, n: int) -> list[float]:
    """CPU time of the whole request in this process: less sensitive than wall time to other load on the box."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}", HTTP_HOST="127.0.0.1")
    url = "/api/v2/customers/bench-customer/entitlements/bench_tokens/value"
    for _ in range(10):
        client.get(url)
    out = []
    for _ in range(n):
        t0 = time.process_time()
        client.get(url)
        out.append((time.process_time() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--reuse", action="store_true", help="keep the events and grants of the previous run")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    existing = Entitlement.objects.filter(customer__key="bench-customer").select_related("customer", "feature").first()
    if args.reuse and existing is not None:
        entitlement, anchor = existing, balance.current_period(entitlement=existing, at=dt.datetime.now(dt.UTC))[0]
    else:
        reset_bench_rows()
        entitlement, anchor = setup(args.events, dt.datetime.now(dt.UTC))
    _, raw_key = ApiKey.issue("bench")
    load_before = os.getloadavg()[0]
    process, port = serve()
    try:
        client = KeepAliveClient(port, raw_key)
        value_path = "/api/v2/customers/bench-customer/entitlements/bench_tokens/value"
        for _ in range(20):  # warm-up: the first read also saves the boundary snapshots
            client.timed(value_path)
        # statements per read, as PostgreSQL counts them (stats are flushed within 10 s of a backend going idle)
        time.sleep(11)
        before = statements_so_far()
        client = KeepAliveClient(port, raw_key)  # gunicorn closed the idle one (keep-alive timeout 2 s)
        for _ in range(100):
            client.timed(value_path)
        time.sleep(11)
        per_read = (statements_so_far() - before - 1) / 100
        client = KeepAliveClient(port, raw_key)
        # the floors in the same rounds: a trivial authenticated endpoint, and a 404 (no view, no auth)
        samples = client.interleaved({"value": (value_path, 200), "floor": ("/api/v1/info/currencies", 200),
                                      "not_found": ("/api/v1/no-such-endpoint", 404)}, args.requests)
        body = json.loads(client.get(value_path)[1], parse_float=Decimal)
    finally:
        process.terminate()
        process.wait(timeout=10)
    cpu = in_process_cpu_ms(raw_key, args.requests // 5)
    raw_seconds, raw = recompute_from_raw(entitlement, dt.datetime.now(dt.UTC))
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs")
    print(f"events in current period: {args.events:,} (period start {anchor.isoformat()}), grants: 5, "
          f"snapshots: {BalanceSnapshot.objects.filter(entitlement=entitlement).count()}")
    print("client: one keep-alive http.client connection to gunicorn (1 gthread worker, 4 threads), sequential, "
          "the three endpoints interleaved")
    for name, label in (("value", f"value via HTTP ({args.requests} requests)"),
                        ("floor", "floor: GET /api/v1/info/currencies (auth + framework only)"),
                        ("not_found", "floor: GET of an unknown path (404, no view)")):
        got = samples[name]
        print(f"{label}: p50 {statistics.median(got):.2f} ms, p99 {percentile(got, 99):.2f} ms, "
              f"max {max(got):.2f} ms")
    print(f"SQL statements per value read (PostgreSQL's count, incl. API key and connection check): {per_read:.1f}")
    print(f"server CPU per request (in-process Django client, same view): p50 {statistics.median(cpu):.2f} ms, "
          f"p99 {percentile(cpu, 99):.2f} ms")
    print(f"recompute from raw events (no snapshot, event scan): {raw_seconds * 1000:.0f} ms")
    print(f"via API: balance {body['balance']}, usage {body['usage']}, overage {body['overage']}; recomputed: "
          f"balance {raw.balance.normalize()}, usage {raw.usage.normalize()}, overage {raw.overage.normalize()}")
    ApiKey.objects.filter(name="bench").delete()


if __name__ == "__main__":
    main()
