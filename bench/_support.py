"""Shared set-up for the metering benchmarks: a dedicated database, Django, a gunicorn server, an API key."""

import os
import socket
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/om_metering_bench")


def prepare_database(fresh: bool) -> None:
    """Create the bench database if needed and migrate it; `fresh` empties the metering tables."""
    base, name = BENCH_DATABASE_URL.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": BENCH_DATABASE_URL, "DJANGO_SETTINGS_MODULE": "openmeter_site.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    if fresh:
        with psycopg.connect(BENCH_DATABASE_URL, autocommit=True) as conn:
            conn.execute("TRUNCATE metering_event, metering_eventkey, metering_pendingevent, metering_rollup, "
                         "metering_clickhouseeventkey, metering_clickhousemeterview")
            conn.execute("DELETE FROM metering_meter")


def setup_django() -> None:
    os.environ["DATABASE_URL"] = BENCH_DATABASE_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openmeter_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def api_key() -> str:
    from openmeter_site.core.models import ApiKey

    return ApiKey.issue("bench")[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(workers: int, threads: int = 4) -> tuple[subprocess.Popen, int]:
    """gunicorn as `bin/run` serves: gthread workers (keep-alive connections), `threads` threads each;
    `threads=0`: sync workers (one request at a time, connection closed after each response)."""
    port = free_port()
    worker_class = ["--worker-class", "gthread", "--threads", str(threads)] if threads else ["--worker-class", "sync"]
    env = {
        **os.environ,
        "DATABASE_URL": BENCH_DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "openmeter_site.settings",
        "LOG_LEVEL": "ERROR",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "openmeter_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            *worker_class,
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


def load_average() -> str:
    """The load average, and how fast this CPU runs Python right now: on a shared virtual machine the second
    moves by half without the first showing it."""
    one, five, _ = os.getloadavg()
    loop = min(timeit.repeat("sum(range(10000))", number=200, repeat=5)) / 200
    return (
        f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores; "
        f"sum(range(10000)) {loop * 1e6:.0f} us"
    )


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def ms(samples: list[float]) -> str:
    return f"p50 {statistics.median(samples) * 1000:7.2f} ms  p95 {percentile(samples, 0.95) * 1000:7.2f} ms"


def backend_cpu_seconds(pid: int) -> float:
    """CPU time a local PostgreSQL backend has used (from /proc): a figure the machine's load does not inflate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends_cpu(pids: list[int]) -> dict[int, float]:
    """`backend_cpu_seconds` of each backend still running (autovacuum and parallel workers come and go)."""
    out = {}
    for pid in pids:
        try:
            out[pid] = backend_cpu_seconds(pid)
        except FileNotFoundError:
            continue
    return out


def backends_cpu_delta(before: dict[int, float]) -> float:
    """CPU used since `before` by the backends that are still running."""
    after = backends_cpu(list(before))
    return sum(after[pid] - before[pid] for pid in after)
