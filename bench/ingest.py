"""Ingest benchmark: batches of 1,000 events through the real HTTP stack, and sustained ingest with the fold keeping up.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/ingest.py [--sustained 300] [--workers 1,2] [--probe 30]

bin/run's processes (gunicorn: 2 gthread workers x 4 threads; a Celery worker; Celery beat running
`metering.fold_pending` every 5 s) serve against the bench database. Measured in one run, side by side:
  - raw PostgreSQL COPY of the same rows into a table shaped like the event table;
  - HTTP ingest at full speed of events that no meter reads (the unread-ingest rate: what ingest costs alone);
  - the fold of a backlog alone, in process (events/s and PostgreSQL CPU per event);
  - for each Celery worker count: the highest ingest rate at which the fold keeps up (oldest pending event never
    older than 30 s; pending back to 0 within 30 s after ingest stops), found by short probes, then `--sustained`
    seconds at that rate with the pending count and the oldest pending age printed every 5 s, read from the
    server's /metrics (openmeter_events_pending, openmeter_events_pending_oldest_seconds).
The end-to-end rate is what the sustained run ingested per second, every event of it folded by the end.

Prints figures, asserts nothing. Uses its own database (BENCH_DATABASE_URL, default om_metering_bench).
"""

import argparse
import contextlib
import datetime as dt
import http.client
import itertools
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import orjson
import psutil
from _support import (
    BENCH_DATABASE_URL,
    ROOT,
    backend_cpu_seconds,
    load_average,
    prepare_database,
    setup_django,
    start_gunicorn,
)

BATCH = 1000
MODELS = ["gpt-4", "gpt-4o", "gpt-3.5", "claude", "llama"]
KEEP_UP_SECONDS = 30  # the goal: oldest pending event never older, and the queue empty this long after ingest stops
PROBE_MARGIN = 0.6  # a probe passes with lag and drain under 60 % of the goal (a short run hides slow growth)
PLACEHOLDER = b"@@@@@@@@"  # in every event id of a body template: replaced by the batch number


def make_events(run: str, batch_no: int | str, type_: str = "prompt", spread: int = 86400) -> list[dict]:
    """A batch of events timed over the last `spread` seconds."""
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "id": f"{run}-{batch_no}-{i}",
            "source": "bench",
            "specversion": "1.0",
            "type": type_,
            "subject": f"customer-{random.randrange(1000)}",
            "time": (now - dt.timedelta(seconds=random.randrange(spread))).isoformat(),
            "data": {"tokens": random.randrange(1, 5000), "model": random.choice(MODELS), "type": "input"},
        }
        for i in range(BATCH)
    ]


class Bodies:
    """Request bodies made from a few templates (1,000 subjects, 5 models, times over the last `spread` seconds),
    each sent with fresh ids: generating 1,000 events per request would take the CPU the server needs. A template
    is made again once it is 10 s old, so that the times stay as recent as `spread` says."""

    def __init__(self, run: str, type_: str, spread: int, templates: int = 40) -> None:
        self.run, self.type, self.spread = run, type_, spread
        self.templates = [self._template() for _ in range(templates)]
        self.numbers = itertools.count()

    def _template(self) -> tuple[float, bytes]:
        events = make_events(self.run, PLACEHOLDER.decode(), self.type, self.spread)
        return time.monotonic(), orjson.dumps(events)

    def next(self) -> bytes:
        n = next(self.numbers)
        made, body = self.templates[n % len(self.templates)]
        if time.monotonic() - made > 10:
            made, body = self.templates[n % len(self.templates)] = self._template()
        return body.replace(PLACEHOLDER, b"%08d" % n)


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


def post(conn: http.client.HTTPConnection, key: str, body: bytes) -> int:
    conn.request("POST", "/api/v1/events", body,
                 {"Content-Type": "application/cloudevents-batch+json", "Authorization": f"Bearer {key}"})
    response = conn.getresponse()
    response.read()
    return response.status


def ingest(port: int, key: str, bodies: Bodies, clients: int, stop: threading.Event, rate: float | None) -> list[int]:
    """Client threads posting batches (keep-alive connections) until `stop`, at `rate` events/s (None: as fast as
    the server takes them); returns [events accepted, requests failed]."""
    counts = [0, 0]
    lock = threading.Lock()
    slots = itertools.count()
    started = time.perf_counter()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not stop.is_set():
            if rate is not None:  # batch k is due at k / (batches per second)
                delay = started + next(slots) * BATCH / rate - time.perf_counter()
                if delay > 0 and stop.wait(delay):
                    break
            try:
                ok = post(conn, key, bodies.next()) == 204
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                ok = False
            with lock:
                counts[0 if ok else 1] += BATCH if ok else 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


def backlog(port: int) -> tuple[int, float]:
    """(pending events, age of the oldest in seconds) as the server's /metrics shows them."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("openmeter_events_pending", "openmeter_events_pending_oldest_seconds"):
            values[name] = float(value)
    return int(values["openmeter_events_pending"]), values["openmeter_events_pending_oldest_seconds"]


@dataclass
class Run:
    target: float | None
    seconds: float
    ingested: int
    failed: int
    max_age: float
    drain: float | None  # seconds until pending was 0 after ingest stopped (None: not within the wait)

    @property
    def rate(self) -> float:
        return self.ingested / self.seconds

    def kept_up(self, margin: float = 1.0) -> bool:
        limit = KEEP_UP_SECONDS * margin
        return self.failed == 0 and self.max_age <= limit and self.drain is not None and self.drain <= limit


def run_at(port: int, key: str, bodies: Bodies, clients: int, rate: float | None, seconds: float,
           verbose: bool) -> Run:
    """Ingest for `seconds` at `rate`, sampling the backlog every 5 s, then wait for the queue to empty."""
    stop = threading.Event()
    result: list[list[int]] = []
    poster = threading.Thread(target=lambda: result.append(ingest(port, key, bodies, clients, stop, rate)))
    started = time.perf_counter()
    poster.start()
    max_age = 0.0
    try:
        while (elapsed := time.perf_counter() - started) < seconds:
            time.sleep(min(5.0, seconds - elapsed))
            pending, age = backlog(port)
            max_age = max(max_age, age)
            if verbose:
                print(f"    {time.perf_counter() - started:6.0f} s  pending {pending:9,}  oldest {age:5.1f} s", flush=True)
    finally:  # also on Ctrl-C: the clients stop before the server does
        stop.set()
        poster.join()
    seconds = time.perf_counter() - started
    ingested, failed = result[0]
    stopped = time.perf_counter()
    drain = None
    while time.perf_counter() - stopped < 2 * KEEP_UP_SECONDS:
        pending, age = backlog(port)
        max_age = max(max_age, age)
        if pending == 0:
            drain = time.perf_counter() - stopped
            break
        time.sleep(1)
    if verbose:
        print(f"    ingest stopped; pending 0 after {drain:.0f} s" if drain is not None
              else f"    ingest stopped; still {pending:,} pending after {2 * KEEP_UP_SECONDS} s")
    return Run(rate, seconds, ingested, failed, max_age, drain)


def wait_for_empty_queue(port: int) -> None:
    while backlog(port)[0]:
        time.sleep(1)


def highest_rate(port: int, key: str, bodies: Bodies, clients: int, ceiling: float, probe: int) -> float:
    """Bisect the fraction of `ceiling` at which the fold keeps up (with margin) over a `probe`-second run."""
    low, high = 0.0, 1.0
    fraction = 0.6
    for _ in range(4):
        wait_for_empty_queue(port)
        result = run_at(port, key, bodies, clients, fraction * ceiling, probe, verbose=False)
        ok = result.kept_up(PROBE_MARGIN)
        drained = f"in {result.drain:.0f} s" if result.drain is not None else "no"
        print(f"    probe {fraction:4.0%} of the unread-ingest rate ({fraction * ceiling:7,.0f}/s): ingested "
              f"{result.rate:7,.0f}/s, oldest pending {result.max_age:4.1f} s, drained "
              f"{drained}: {'keeps up' if ok else 'behind'}",
              flush=True)
        low, high = (fraction, high) if ok else (low, fraction)
        fraction = (low + high) / 2
    return max(low, 0.05) * ceiling


def fold_backlog_rate() -> tuple[int, float, float]:
    """Fold what is pending, alone, in this process: events, events/s and PostgreSQL CPU per event."""
    from django.db import connection

    from metering.postgres.fold import fold_backlog

    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    cpu, started = backend_cpu_seconds(pid), time.perf_counter()
    folded = fold_backlog(max_batches=1000)
    elapsed, cpu = time.perf_counter() - started, backend_cpu_seconds(pid) - cpu
    return folded, folded / elapsed, cpu / max(folded, 1) * 1e6


def create_meter() -> None:
    """The meter the fold folds the events into (SUM of tokens by model and type, as bench/meter_query.py)."""
    from metering.models import Meter

    Meter.objects.create(
        slug="bench_tokens",
        name="bench",
        aggregation="SUM",
        event_type="prompt",
        value_property="$.tokens",
        group_by={"model": "$.model", "type": "$.type"},
    )


def celery(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": BENCH_DATABASE_URL, "DJANGO_SETTINGS_MODULE": "openmeter_site.settings",
           "LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "openmeter_site", *args],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def watch_rss(master: psutil.Process, stop_event: threading.Event, peak: list[int]) -> None:
    while not stop_event.is_set():
        for child in master.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                peak[0] = max(peak[0], child.memory_info().rss)
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=100, help="batches for COPY and the fold-alone figure")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--baseline", type=int, default=30, help="seconds of unread ingest at full speed")
    parser.add_argument("--sustained", type=int, default=60, help="seconds of ingest at the highest rate kept up")
    parser.add_argument("--probe", type=int, default=30, help="seconds of each probe of the rate search")
    parser.add_argument("--workers", default="1,2", help="Celery worker processes to measure, e.g. 1,2")
    parser.add_argument("--rate", type=float, help="events/s of the sustained runs (skips the search)")
    parser.add_argument("--spread", type=int, default=86400,
                        help="event times over the last this many seconds (60: real-time usage; 86400: late events)")
    args = parser.parse_args()

    prepare_database(fresh=True)
    setup_django()
    from _support import api_key
    from django.core.management import call_command

    call_command("install_schedules", stdout=open(os.devnull, "w"))  # noqa: SIM115 (closed at exit)
    key = api_key()
    create_meter()
    run = uuid.uuid4().hex[:8]
    print(f"ingest benchmark, event times over the last {args.spread:,} s; {load_average()}", flush=True)

    batches = [make_events(run, i, spread=args.spread) for i in range(args.batches)]
    copy = copy_rate(batches)
    print(f"  raw PostgreSQL COPY of {args.batches} batches (1 connection, table shaped like the events): "
          f"{copy:9,.0f} ev/s", flush=True)

    web, port = start_gunicorn(2, 4)
    workers: subprocess.Popen | None = None
    celery(["purge", "-f"]).wait()
    beat = celery(["beat", "--schedule", f"/tmp/celerybeat-bench-{run}", "-l", "warning"])
    try:
        # the fold alone: a backlog of the same kind of events, folded in this process (no worker running yet)
        for batch in batches:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            post(conn, key, orjson.dumps(batch))
            conn.close()
        folded, fold_rate, fold_cpu = fold_backlog_rate()
        print(f"  fold of {folded:,} pending events alone (in process): {fold_rate:9,.0f} ev/s, PostgreSQL CPU "
              f"{fold_cpu:.1f} us/event", flush=True)

        peak, watching = [0], threading.Event()
        watcher = threading.Thread(target=watch_rss, args=(psutil.Process(web.pid), watching, peak))
        watcher.start()
        workers = celery(["worker", "--concurrency", "2", "-l", "warning"])
        unread_bodies = Bodies(run + "u", "unread", args.spread)
        unread = run_at(port, key, unread_bodies, args.clients, None, args.baseline, verbose=False)
        watching.set()
        watcher.join()
        stop(workers)
        workers = None
        print(f"  HTTP ingest of events no meter reads, full speed, {args.baseline} s (gunicorn 2 workers x 4 "
              f"threads, {args.clients} clients, Celery worker and beat running): {unread.rate:9,.0f} ev/s "
              f"(= {unread.rate / copy:.0%} of COPY); peak web worker RSS {peak[0] / 2**20:.0f} MB", flush=True)

        bodies = Bodies(run + "s", "prompt", args.spread)
        for count in [int(n) for n in args.workers.split(",")]:
            workers = celery(["worker", "--concurrency", str(count), "-l", "warning"])
            wait_for_empty_queue(port)
            print(f"  Celery worker with {count} process{'es' if count > 1 else ''}; {load_average()}", flush=True)
            rate = args.rate or highest_rate(port, key, bodies, args.clients, unread.rate, args.probe)
            for _ in range(3):
                print(f"    sustained {args.sustained} s at {rate:,.0f} ev/s:", flush=True)
                result = run_at(port, key, bodies, args.clients, rate, args.sustained, verbose=True)
                if result.kept_up() or args.rate:
                    break
                rate *= 0.9
            print(f"  => {count} worker process{'es' if count > 1 else ''}: end to end {result.rate:9,.0f} ev/s "
                  f"ingested and folded ({result.rate / unread.rate:.0%} of unread ingest, "
                  f"{result.rate / copy:.0%} of COPY); oldest pending at most {result.max_age:.1f} s; "
                  f"{'kept up' if result.kept_up() else 'did NOT keep up'}; {load_average()}", flush=True)
            stop(workers)
            workers = None
    finally:
        for process in (workers, beat):
            if process is not None:
                stop(process)
        web.terminate()
        web.wait(timeout=10)
    print(f"  after: {load_average()}")


if __name__ == "__main__":
    main()
