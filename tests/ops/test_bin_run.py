"""bin/run on the local PostgreSQL and Redis: a Ctrl-C (SIGINT to its whole process group, as a terminal sends it)
stops web, worker and beat in that order within bin/run's 10-second budget, with no traceback, no process left and
no gunicorn worker killed; while it runs, its web workers' metrics add up on /metrics and its logs are JSON lines."""

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests
from django.conf import settings

from tests import conftest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_ctrl_c_stops_web_worker_and_beat_in_order_and_leaves_nothing(tmp_path):
    port = conftest.free_port()
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL=conftest.test_database_url(), REDIS_URL=settings.REDIS_URL, PORT=str(port), WEB_WORKERS="2",
               WEB_THREADS="2", CELERY_CONCURRENCY="1", OPENMETER_DATA_DIR=str(tmp_path / "data"),
               STATIC_ROOT=str(tmp_path / "static"), CELERY_TASK_DEFAULT_QUEUE=f"bin-run-{uuid.uuid4().hex[:8]}")
    with log.open("w") as out:
        run = subprocess.Popen(["bin/run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)  # its own process group, as a terminal's foreground job
    base = f"http://127.0.0.1:{port}"
    try:
        key = wait_for(lambda: re.search(r"API key: (om_\S+)", log.read_text()), 120, f"bootstrap:\n{log}")[1]

        def ready():
            try:
                return requests.get(f"{base}/readyz", timeout=5).status_code == 200 and "ready." in log.read_text()
            except requests.RequestException:
                return False

        wait_for(ready, 120, "web and worker")
        # every request on a new connection: the two web workers both answer some, the scrape counts them all
        for i in range(8):
            response = requests.get(f"{base}/api/v1/info/currencies", headers={
                "Authorization": f"Bearer {key}", "X-Request-Id": f"trace-{i}", "Connection": "close"}, timeout=10)
            assert response.headers["X-Request-Id"] == f"trace-{i}"
        metrics = requests.get(f"{base}/metrics", timeout=10).text
        assert 'openmeter_http_requests_total{method="GET",route="api/v1/info/currencies",status="200"} 8.0' in metrics
        assert "openmeter_events_pending 0.0" in metrics
        processes = psutil.Process(run.pid).children(recursive=True)
        assert len(processes) >= 6  # gunicorn master + 2 workers, celery worker + its child, beat
    finally:
        # when: Ctrl-C, to the whole foreground group
        os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=20)  # bin/run kills what is left at 10 s
    text = log.read_text()
    assert re.findall(r"^bin/run: (\w+) stopped \(", text, flags=re.MULTILINE) == ["web", "worker", "beat"]
    total = float(re.search(r"^bin/run: stopped in ([\d.]+) s$", text, flags=re.MULTILINE)[1])
    assert total <= 10 and run.returncode == 0
    assert "did not stop in time" not in text
    assert "Traceback" not in text and "SIGKILL" not in text
    assert wait_for(lambda: not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
                    10, "every process to exit")
    # the logs: JSON lines, one per request, with the request id and the key's name
    requests_logged = [json.loads(line) for line in text.splitlines() if '"logger": "openmeter.request"' in line]
    assert {(r["request_id"], r["api_key"], r["status"]) for r in requests_logged if r["path"].startswith("/api/")} == {
        (f"trace-{i}", "bin/run startup key", 200) for i in range(8)}
