"""Ingest benchmark: batches of 1,000 events through the real HTTP stack (gunicorn), beside raw COPY.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/ingest.py [--batches 200] [--clients 4] [--sustained 60]

Prints figures, asserts nothing. Uses its own database (BENCH_DATABASE_URL, default om_metering_bench).
"""

import argparse
import contextlib
import datetime as dt
import http.client
import random
import threading
import time
import uuid

import orjson
import psutil
from _support import (
    BENCH_DATABASE_URL,
    backend_cpu_seconds,
    load_average,
    prepare_database,
    setup_django,
    start_gunicorn,
)

BATCH = 1000
MODELS = ["gpt-4", "gpt-4o", "gpt-3.5", "claude", "llama"]


def make_events(run: str, batch_no: int) -> list[dict]:
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "id": f"{run}-{batch_no}-{i}",
            "source": "bench",
            "specversion": "1.0",
            "type": "prompt",
            "subject": f"customer-{random.randrange(1000)}",
            "time": (now - dt.timedelta(seconds=random.randrange(86400))).isoformat(),
            "data": {"tokens": random.randrange(1, 5000), "model": random.choice(MODELS), "type": "input"},
        }
        for i in range(BATCH)
    ]


def copy_rate(batches: list[list[dict]]) -> float:
    """Raw COPY of the same rows into a table shaped like metering_event (same indexes), one connection."""
    import psycopg

    rows = [
        (e["id"], e["source"], e["type"], e["subject"], e["time"], orjson.dumps(e["data"]).decode())
        for batch in batches
        for e in batch
    ]
    with psycopg.connect(BENCH_DATABASE_URL, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (LIKE metering_event INCLUDING ALL)")
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY bench_copy (id, source, type, subject, time, data) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy")
    return len(rows) / elapsed


def copy_store_sql() -> str:
    from metering.postgres.store import store_sql

    return store_sql("SELECT id, source, type, subject, time, data FROM om_ingest ORDER BY source, id")


def store_comparison(run: str, n: int) -> tuple[float, float]:
    """In-process: the store's jsonb/unnest statement vs COPY into a temp table + INSERT ... SELECT (same
    dedup and pending queue), on the same kind of batches."""
    from django.db import connection, transaction

    from metering.events.ingest import parse_ingest_body
    from metering.postgres.store import insert_batch

    bodies = [orjson.dumps(make_events(f"{run}-u", i)) for i in range(n)]
    started = time.perf_counter()
    for body in bodies:
        insert_batch(parse_ingest_body(body, "application/cloudevents-batch+json", now=dt.datetime.now(dt.UTC)))
    unnest = n * BATCH / (time.perf_counter() - started)

    batches = [make_events(f"{run}-c", i) for i in range(n)]
    started = time.perf_counter()
    for batch in batches:
        body = orjson.dumps(batch)
        parsed = parse_ingest_body(body, "application/cloudevents-batch+json", now=dt.datetime.now(dt.UTC))
        events = orjson.loads(body)
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS om_ingest (id text, source text, type text, subject text, "
                "time timestamptz, data jsonb) ON COMMIT DELETE ROWS"
            )
            with cur.copy("COPY om_ingest FROM STDIN") as cp:
                for e, t in zip(events, parsed.times, strict=True):
                    cp.write_row((e["id"], e["source"], e["type"], e["subject"], t, orjson.dumps(e["data"]).decode()))
            cur.execute(copy_store_sql())
    copy = n * BATCH / (time.perf_counter() - started)
    return unnest, copy


def http_rate(port: int, key: str, bodies: list[bytes], clients: int) -> float:
    queue = list(bodies)
    lock = threading.Lock()
    errors: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request(
                "POST",
                "/api/v1/events",
                body,
                {
                    "Content-Type": "application/cloudevents-batch+json",
                    "Authorization": f"Bearer {key}",
                },
            )
            response = conn.getresponse()
            response.read()
            if response.status != 204:
                errors.append(str(response.status))
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  !! {len(errors)} failed requests: {errors[:3]}")
    return len(bodies) * BATCH / elapsed


def create_meter() -> None:
    """The meter the fold job folds the events into (SUM of tokens by model and type, as bench/meter_query.py)."""
    from metering.models import Meter

    Meter.objects.create(
        slug="bench_tokens",
        name="bench",
        aggregation="SUM",
        event_type="prompt",
        value_property="$.tokens",
        group_by={"model": "$.model", "type": "$.type"},
    )


def fold_backlog_rate() -> tuple[float, float]:
    """Fold what the HTTP phase left pending, alone: events/s and PostgreSQL CPU per event."""
    from django.db import connection

    from metering.postgres.fold import fold_backlog

    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    cpu, started = backend_cpu_seconds(pid), time.perf_counter()
    folded = fold_backlog()
    elapsed, cpu = time.perf_counter() - started, backend_cpu_seconds(pid) - cpu
    return folded / elapsed, cpu / folded * 1e6


def post_until(port: int, key: str, run: str, clients: int, stop: threading.Event, posted: list[int]) -> None:
    """Ingest clients posting fresh batches until `stop`; `posted[0]` counts the events accepted."""
    lock = threading.Lock()

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            body = orjson.dumps(make_events(f"{run}-s{n}", i))
            i += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request(
                "POST",
                "/api/v1/events",
                body,
                {"Content-Type": "application/cloudevents-batch+json", "Authorization": f"Bearer {key}"},
            )
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 204:
                with lock:
                    posted[0] += BATCH

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def fold_until(stop: threading.Event, folded: list[int]) -> None:
    """What a Celery worker running `metering.fold_pending` back to back does, one batch at a time so that it
    stops with the ingest clients."""
    from django.db import connection

    from metering.postgres.fold import fold_pending

    while not stop.is_set():
        done = fold_pending()
        folded[0] += done
        if done == 0:
            time.sleep(0.5)
    connection.close()


def sustained(port: int, key: str, run: str, clients: int, seconds: int) -> None:
    """Ingest at full speed for `seconds` while the fold job runs beside it; sample the pending queue."""
    import psycopg

    stop = threading.Event()
    posted, folded = [0], [0]
    with psycopg.connect(BENCH_DATABASE_URL, autocommit=True) as conn:
        pending = lambda: conn.execute("SELECT count(*) FROM metering_pendingevent").fetchone()[0]  # noqa: E731
        start_pending = pending()
        threads = [
            threading.Thread(target=post_until, args=(port, key, run, clients, stop, posted)),
            threading.Thread(target=fold_until, args=(stop, folded)),
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        samples = []
        while time.perf_counter() - started < seconds:
            time.sleep(5)
            samples.append((time.perf_counter() - started, pending()))
        stop.set()
        elapsed, ingested, folded_then = time.perf_counter() - started, posted[0], folded[0]
        for t in threads:
            t.join()
    half = [n for t, n in samples if t >= seconds / 2]
    growth = (half[-1] - half[0]) / (samples[-1][0] - seconds / 2) if len(half) > 1 else 0.0
    print(
        f"  sustained {seconds} s, ingest with the fold job running: ingest {ingested / elapsed:9,.0f} ev/s | "
        f"folded {folded_then / elapsed:9,.0f} ev/s"
    )
    print(
        f"  pending queue: {start_pending:,} at start, max {max(n for _, n in samples):,}, "
        f"{samples[-1][1]:,} at the end; second half: {growth:+,.0f} events/s "
        f"({'bounded' if growth <= 0 else 'growing'}); samples every 5 s: {[n for _, n in samples]}"
    )


def watch_rss(master: psutil.Process, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        for child in master.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                peak[0] = max(peak[0], child.memory_info().rss)
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker; 0 = sync workers")
    parser.add_argument("--sustained", type=int, default=60, help="seconds of ingest with the fold job running")
    args = parser.parse_args()

    prepare_database(fresh=True)
    setup_django()
    from _support import api_key

    key = api_key()
    create_meter()
    run = uuid.uuid4().hex[:8]
    print(f"ingest benchmark: {args.batches} batches x {BATCH} events; {load_average()}")

    batches = [make_events(run, i) for i in range(args.batches)]
    bodies = [orjson.dumps(b) for b in batches]
    copy = copy_rate(batches)

    unnest_store, copy_store = store_comparison(run, 20)
    print(
        f"  store, in process (20 batches): jsonb/unnest statement {unnest_store:9,.0f} ev/s | "
        f"COPY to temp table + INSERT SELECT {copy_store:9,.0f} ev/s"
    )

    process, port = start_gunicorn(args.workers, args.threads)
    try:
        master = psutil.Process(process.pid)
        http_rate(port, key, [orjson.dumps(make_events(run + "w", i)) for i in range(5)], args.clients)  # warm-up
        stop, peak = threading.Event(), [0]
        watcher = threading.Thread(target=watch_rss, args=(master, stop, peak))
        watcher.start()
        rate = http_rate(port, key, bodies, args.clients)
        stop.set()
        watcher.join()
        fold_rate, fold_cpu = fold_backlog_rate()
        if args.sustained:
            sustained(port, key, run, args.clients, args.sustained)
    finally:
        process.terminate()
        process.wait(timeout=10)
    server = f"{args.threads} gthread threads each" if args.threads else "sync"
    print(f"  HTTP ingest (gunicorn {args.workers} workers, {server}; {args.clients} clients): {rate:9,.0f} ev/s")
    print(f"  raw PostgreSQL COPY of the same rows (1 connection):      {copy:9,.0f} ev/s")
    print(f"  ingest / COPY = {rate / copy:.0%}   target >= 20,000 ev/s and >= 40% of COPY")
    print(f"  peak RSS of a web worker: {peak[0] / 2**20:.0f} MB   target < 300 MB")
    print(
        f"  fold of the ingested backlog alone (no ingest beside it): {fold_rate:9,.0f} ev/s, "
        f"PostgreSQL CPU {fold_cpu:.1f} us/event   target >= the ingest rate"
    )
    print(f"  after: {load_average()}")


if __name__ == "__main__":
    main()
