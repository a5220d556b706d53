"""Real Celery workers for crash tests: started on a queue of the test's own, killed with SIGKILL."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from django.conf import settings as django_settings

from tests import conftest


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)  # polling for state; nothing is asserted on time
    raise AssertionError(f"timed out waiting for {what}")


def db_dsn() -> str:
    return conftest.test_database_url().replace("postgres://", "postgresql://")


def sessions_of(application_name: str) -> list[int]:
    with psycopg.connect(db_dsn(), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]).fetchall()
    return [pid for (pid,) in rows]


class Workers:
    """Solo-pool workers on a fresh queue, with `env` added to their environment."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.queue = f"tests-{uuid.uuid4().hex[:12]}"
        self.env = env or {}
        self.application_name = f"crash-test-worker-{self.queue}"  # names its PostgreSQL sessions
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "openmeter_site", "worker", "--pool", "solo", "-Q", self.queue,
             "--loglevel", "WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip"],
            cwd=conftest.ROOT,
            env={**os.environ, "DATABASE_URL": conftest.test_database_url(), "REDIS_URL": django_settings.REDIS_URL,
                 "DJANGO_SETTINGS_MODULE": "openmeter_site.settings", "CELERY_TASK_ALWAYS_EAGER": "0",
                 "CELERY_TASK_DEFAULT_QUEUE": self.queue, "PGAPPNAME": self.application_name, **self.env},
        )
        self.processes.append(process)
        return process

    def kill(self, worker: subprocess.Popen) -> None:
        """SIGKILL, then end its database sessions (and their session locks), as PostgreSQL does once it notices."""
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        with psycopg.connect(db_dsn(), autocommit=True) as conn:
            for pid in sessions_of(self.application_name):
                conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        wait_for(lambda: not sessions_of(self.application_name), "the killed worker's sessions to end")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            process.wait(timeout=30)
