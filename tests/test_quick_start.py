"""Smoke test of the quick start: `bin/run` with its embedded PostgreSQL and Redis (what a machine without either
gets), through to an event ingested over HTTP, folded by its Celery worker, and counted by a meter query; then a
SIGTERM stops web, worker and beat before the embedded database and Redis."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.live


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's temporary tree: the embedded PostgreSQL runs as another user (pgserver, when we are root),
    which must traverse the parents, and a pytest session starting meanwhile resets its tree's root to mode 0700."""
    path = Path(tempfile.mkdtemp(prefix="om-quick-start-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_bin_run_serves_on_its_embedded_services(tmp_path, data_dir):
    port = free_port()
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(OPENMETER_EMBEDDED="1", OPENMETER_DATA_DIR=str(data_dir), PORT=str(port), WEB_WORKERS="1",
               CELERY_CONCURRENCY="1", CELERY_LOG_LEVEL="warning", STATIC_ROOT=str(tmp_path / "static"))
    with log.open("w") as out:
        run = subprocess.Popen(["bin/run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        def bootstrapped():
            assert run.poll() is None, f"bin/run exited:\n{log.read_text()[-3000:]}"
            return re.search(r"API key: (om_\S+)", log.read_text())

        key = wait_for(bootstrapped, 300, f"bin/run to bootstrap:\n{log}")[1]
        base = f"http://127.0.0.1:{port}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"

        def up():
            try:
                return session.get(f"{base}/api/v1/info/currencies", timeout=10).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, 60, "the API")
        # the README's example: bin/manage makes a key in the database bin/run uses, here its embedded one
        made = subprocess.run("bin/manage create_api_key readme-example | tail -n 1", shell=True, cwd=ROOT, env=env,
                              capture_output=True, text=True, check=True).stdout.strip()
        assert requests.get(f"{base}/api/v1/info/currencies", headers={"Authorization": f"Bearer {made}"},
                            timeout=10).status_code == 200
        meter = {"slug": "calls", "aggregation": "SUM", "eventType": "api-call", "valueProperty": "$.n"}
        assert session.post(f"{base}/api/v1/meters", json=meter).status_code == 201
        events = [{"id": f"e{i}", "source": "smoke", "specversion": "1.0", "type": "api-call", "subject": "acme",
                   "time": "2026-11-30T10:00:00Z", "data": {"n": n}} for i, n in enumerate([3, 4])]
        assert session.post(f"{base}/api/v1/events", json=events).status_code == 204

        def folded_total():
            rows = session.get(f"{base}/api/v1/meters/calls/query").json()["data"]
            return rows and rows[0]["value"]

        assert wait_for(folded_total, 60, "the meter query") == 7  # 3 + 4
        info = (data_dir / "services.env").read_text()
        assert "%2F" in info and "redis://127.0.0.1:" in info  # PostgreSQL on its socket, Redis on loopback
        database_url = re.search(r"DATABASE_URL='([^']+)'", info)[1]

        def nothing_pending():
            with psycopg.connect(database_url) as conn:
                return conn.execute("SELECT count(*) FROM metering_pendingevent").fetchone()[0] == 0

        # the Celery worker got the fold task through the embedded Redis and folded both events into rollups
        wait_for(nothing_pending, 60, "the worker to fold the events")
    finally:
        run.send_signal(signal.SIGTERM)  # to bin/run alone: it stops the rest, the database last
        run.wait(timeout=60)
    text = log.read_text()
    assert re.findall(r"^bin/run: ([\w ]+?) stopped \(", text, flags=re.MULTILINE) == [
        "web", "worker", "beat", "embedded services"]
    assert "Traceback" not in text
    # nothing is left running: the embedded PostgreSQL and Redis stop with bin/run
    data = str(data_dir)
    wait_for(lambda: not [p for p in psutil.process_iter(["cmdline"]) if data in " ".join(p.info["cmdline"] or [])],
             30, "the embedded services to stop")
