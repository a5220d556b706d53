"""Ingest benchmark: batches of 1,000 events through the real HTTP stack (gunicorn), beside raw COPY.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/ingest.py [--batches 200] [--workers 2] [--clients 4]

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
from _support import BENCH_DATABASE_URL, load_average, prepare_database, setup_django, start_gunicorn

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


COPY_STORE_SQL = """
WITH ins AS (
    INSERT INTO metering_event (id, source, type, subject, time, data)
    SELECT id, source, type, subject, time, data FROM om_ingest
    ON CONFLICT (source, id) DO NOTHING RETURNING seq
)
INSERT INTO metering_pendingevent (seq) SELECT seq FROM ins
"""


def store_comparison(run: str, n: int) -> tuple[float, float]:
    """In-process: the store's jsonb/unnest statement vs COPY into a temp table + INSERT ... SELECT (same
    dedup and pending queue), on the same kind of batches."""
    from django.db import connection, transaction

    from metering.events.ingest import parse_ingest_body
    from metering.events.store import insert_batch

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
            cur.execute(COPY_STORE_SQL)
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
    args = parser.parse_args()

    prepare_database(fresh=True)
    setup_django()
    from _support import api_key

    key = api_key()
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

    process, port = start_gunicorn(args.workers)
    try:
        master = psutil.Process(process.pid)
        http_rate(port, key, [orjson.dumps(make_events(run + "w", i)) for i in range(5)], args.clients)  # warm-up
        stop, peak = threading.Event(), [0]
        watcher = threading.Thread(target=watch_rss, args=(master, stop, peak))
        watcher.start()
        rate = http_rate(port, key, bodies, args.clients)
        stop.set()
        watcher.join()
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(f"  HTTP ingest (gunicorn {args.workers} workers, {args.clients} clients): {rate:9,.0f} ev/s")
    print(f"  raw PostgreSQL COPY of the same rows (1 connection):      {copy:9,.0f} ev/s")
    print(f"  ingest / COPY = {rate / copy:.0%}   target >= 20,000 ev/s and >= 40% of COPY")
    print(f"  peak RSS of a web worker: {peak[0] / 2**20:.0f} MB   target < 300 MB")
    print(f"  after: {load_average()}")


if __name__ == "__main__":
    main()
