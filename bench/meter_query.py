"""Meter query benchmark: rollups + raw tail through the real HTTP stack, beside the naive raw-event SQL.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/meter_query.py [--events 1000000] [--runs 30]

1,000 subjects, 30 days, SUM of $.tokens grouped by $.model (5 values), windowSize=DAY. Prints figures,
asserts nothing. Uses its own database (BENCH_DATABASE_URL, default om_metering_bench); `--reuse` keeps the
events of the previous run with the same size.
"""

import argparse
import datetime as dt
import http.client
import random
import time
import urllib.parse

import orjson
import psutil
import psycopg
from _support import (
    BENCH_DATABASE_URL,
    backend_cpu_seconds,
    backends_cpu,
    backends_cpu_delta,
    load_average,
    ms,
    prepare_database,
    setup_django,
    start_gunicorn,
)

START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(days=30)
SUBJECTS = 1000
CHUNK = 1_000_000

# generated rows stored as ingest stores them (de-duplication keys, pending queue): metering.postgres.store.store_sql
GENERATE_SELECT = """
    SELECT 'bench-' || g AS id, 'bench' AS source, 'prompt' AS type, 'customer-' || (g %% 1000) AS subject,
           %(start)s + (g::float8 / %(total)s) * interval '30 days' - (g %% 97) * interval '1 second' AS time,
           jsonb_build_object('tokens', (g * 7919) %% 5000 + 1,
                              'model', (ARRAY['gpt-4','gpt-4o','gpt-3.5','claude','llama'])[1 + (g / 1000) %% 5],
                              'type', 'input') AS data
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
"""


def load_events(total: int) -> None:
    from metering.postgres.partitions import month_of, partitions_ensure
    from metering.postgres.store import store_sql

    partitions_ensure({month_of(START - dt.timedelta(seconds=97)), month_of(START), month_of(END)})
    with psycopg.connect(BENCH_DATABASE_URL, autocommit=True) as conn:
        started = time.perf_counter()
        for lo in range(1, total + 1, CHUNK):
            params = {"start": START, "total": total, "lo": lo, "hi": min(total, lo + CHUNK - 1)}
            conn.execute(store_sql(GENERATE_SELECT), params)
        print(f"  generated {total:,} events in {time.perf_counter() - started:.1f} s (SQL, not the ingest path)")
        conn.execute("VACUUM ANALYZE metering_event")


def fold(total: int) -> None:
    """The real fold job over the generated backlog; PostgreSQL's CPU time per event beside the wall rate (on a
    shared machine the wall rate depends on everyone else's load, the CPU cost much less)."""
    from django.db import connection

    from metering.postgres.fold import fold_backlog

    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    cpu, started = backend_cpu_seconds(pid), time.perf_counter()
    folded = 0
    while True:
        done = fold_backlog(max_batches=1000)
        folded += done
        if done == 0:
            break
    elapsed, cpu = time.perf_counter() - started, backend_cpu_seconds(pid) - cpu
    print(
        f"  folded {folded:,} pending events into rollups in {elapsed:.1f} s ({folded / elapsed:,.0f} ev/s; "
        f"PostgreSQL CPU {cpu / folded * 1e6:.1f} us/event = {folded / cpu:,.0f} ev/s per core)"
    )
    with psycopg.connect(BENCH_DATABASE_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE metering_rollup")
        conn.execute("VACUUM ANALYZE metering_pendingevent")
        rows = conn.execute("SELECT resolution, count(*) FROM metering_rollup GROUP BY 1 ORDER BY 1").fetchall()
    print(f"  rollup rows by resolution (1=minute, 2=hour, 3=day): {dict(rows)}")


class Client:
    """A keep-alive HTTP client that costs little itself (http.client, one connection reused), as a backend
    checking meters on its hot path would hold; `fresh=True` opens a new connection per request instead."""

    def __init__(self, port: int, key: str, fresh: bool = False):
        self.port, self.fresh = port, fresh
        self.headers = {"Authorization": f"Bearer {key}"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path: str) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        if self.fresh:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if self.fresh:
            self.conn.close()
        return elapsed, response.status, body

    def query(self, params: dict) -> float:
        elapsed, status, body = self.get(f"/api/v1/meters/bench_tokens/query?{urllib.parse.urlencode(params, doseq=True)}")
        if status != 200:
            raise RuntimeError(f"query failed: {status} {body[:200]!r}")
        return elapsed

    def close(self) -> None:
        self.conn.close()


class ServerCpu:
    """CPU time the gunicorn workers and the bench database's PostgreSQL backends spend per request."""

    def __init__(self, master_pid: int):
        self.workers = [p.pid for p in psutil.Process(master_pid).children()]
        self.per_request: list[str] = []

    def measure(self, run):
        with psycopg.connect(BENCH_DATABASE_URL, autocommit=True) as conn:
            backends = [
                pid
                for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
            ]
        web, db = _cpu(self.workers), backends_cpu(backends)
        samples = run()
        web, db = _cpu(self.workers) - web, backends_cpu_delta(db)
        self.per_request.append(f"{web / len(samples) * 1000:.1f} + {db / len(samples) * 1000:.1f} ms")
        return samples


def _cpu(pids: list[int]) -> float:
    times = [psutil.Process(pid).cpu_times() for pid in pids]
    return sum(t.user + t.system for t in times)


def db_time(spec) -> float:
    """Planning + execution time PostgreSQL reports for the statement `run_query` runs (ms), executed as the
    API executes it (prepared, with its parameters): independent of client load."""
    from django.db import connection

    from metering.postgres.query import Statement, rollup_statement
    from openmeter_site.core.sql import fetch_prepared

    statement = rollup_statement(spec)
    assert isinstance(statement, Statement), "the bench meter's rollups are complete"
    connection.close()  # a new connection, whose only prepared statement is this one
    for _ in range(6):  # past PostgreSQL's custom plans: the generic plan, as a long-lived connection runs it
        fetch_prepared(statement.text, statement.params)
    with connection.cursor() as cur:
        cur.execute("SELECT name FROM pg_prepared_statements")
        (name,) = cur.fetchone()
        args = ", ".join(f"%({key})s" for key in statement.params)
        cur.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({args})", statement.params)
        plan = cur.fetchone()[0]
    plan = plan[0] if isinstance(plan, list) else orjson.loads(plan)[0]
    return plan["Planning Time"] + plan["Execution Time"]


def timed(fn, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--naive-runs", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep the events of a previous run")
    args = parser.parse_args()

    prepare_database(fresh=not args.reuse)
    setup_django()
    from _support import api_key

    from metering.models import Meter
    from metering.postgres.query import QuerySpec, meter_usage, run_query, run_raw_query

    print(f"meter query benchmark: {args.events:,} events, {SUBJECTS} subjects, 30 days; {load_average()}")
    meter = Meter.objects.filter(slug="bench_tokens", deleted_at__isnull=True).first()
    if meter is None:
        meter = Meter.objects.create(
            slug="bench_tokens",
            name="bench",
            aggregation="SUM",
            event_type="prompt",
            value_property="$.tokens",
            group_by={"model": "$.model", "type": "$.type"},
        )
    if not args.reuse:
        load_events(args.events)
        fold(args.events)
    key = api_key()

    def subject() -> str:
        return f"customer-{random.randrange(SUBJECTS)}"

    base = {"from": START.isoformat(), "to": END.isoformat(), "windowSize": "DAY", "groupBy": "model"}
    one_spec = lambda s: QuerySpec(  # noqa: E731
        meter=meter, start=START, end=END, window_size="DAY", subjects=[s], group_by=["subject", "model"]
    )
    all_spec = QuerySpec(meter=meter, start=START, end=END, window_size="DAY", group_by=["model"])

    process, port = start_gunicorn(2)
    try:
        client, fresh = Client(port, key), Client(port, key, fresh=True)
        for _ in range(20):  # warm-up: both workers, their connections and their threads
            client.query(base)
            fresh.query({**base, "subject": subject()})
        cpu = ServerCpu(process.pid)
        floor_404 = [client.get("/api/v1/no-such-endpoint")[0] for _ in range(args.runs)]
        floor_auth = cpu.measure(lambda: [client.get("/api/v1/info/currencies")[0] for _ in range(args.runs)])
        one_http = cpu.measure(lambda: [client.query({**base, "subject": subject()}) for _ in range(args.runs)])
        all_http = cpu.measure(lambda: [client.query(base) for _ in range(args.runs)])
        one_fresh = [fresh.query({**base, "subject": subject()}) for _ in range(args.runs)]
        all_fresh = [fresh.query(base) for _ in range(args.runs)]
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
    one_rollup = timed(lambda: run_query(one_spec(subject())), args.runs)
    all_rollup = timed(lambda: run_query(all_spec), args.runs)
    usage = timed(lambda: meter_usage(meter=meter, subjects=[subject()], start=START, end=END), args.runs)
    one_raw = timed(lambda: run_raw_query(one_spec(subject())), args.naive_runs)
    all_raw = timed(lambda: run_raw_query(all_spec), args.naive_runs)
    rows = len(run_query(all_spec))
    one_db, all_db = db_time(one_spec(subject())), db_time(all_spec)

    print("  HTTP: gunicorn gthread (2 workers x 4 threads), one keep-alive connection (http.client)")
    print(f"  floor: unknown path (404) {ms(floor_404)} | GET /api/v1/info/currencies (auth only) {ms(floor_auth)}")
    print(
        f"  CPU per request (web workers + PostgreSQL backends, which the machine's load does not inflate much): "
        f"auth only {cpu.per_request[0]}, one subject {cpu.per_request[1]}, all subjects {cpu.per_request[2]}"
    )
    print(
        f"  one subject, month, DAY, by model   HTTP {ms(one_http)} | in process {ms(one_rollup)} | "
        f"naive raw SQL {ms(one_raw)}   (target p50 <= 5 ms)"
    )
    print(
        f"  all subjects, month, DAY, by model  HTTP {ms(all_http)} | in process {ms(all_rollup)} | "
        f"naive raw SQL {ms(all_raw)}   (target p50 <= 50 ms; {rows} rows)"
    )
    print(f"  same over a new connection per request: one subject {ms(one_fresh)} | all subjects {ms(all_fresh)}")
    print(f"  meter_usage (entitlements), one subject, month: in process {ms(usage)}")
    print(
        f"  PostgreSQL alone (EXPLAIN ANALYZE planning + execution): one subject {one_db:.2f} ms, "
        f"all subjects {all_db:.2f} ms (the rest is Python, HTTP and waiting for a CPU)"
    )
    print(f"  after: {load_average()}")


if __name__ == "__main__":
    main()
