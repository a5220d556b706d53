"""Shared fixtures: real PostgreSQL and Redis, an API client with a real key, a live gunicorn server."""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
import redis
from celery._state import _set_task_join_will_block
from django.conf import settings
from playwright.sync_api import Browser, Page, sync_playwright
from rest_framework.test import APIClient

from openmeter_site.celery import app as celery_app
from openmeter_site.core.models import ApiKey

ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis is not reachable at {settings.REDIS_URL}: {exc}. bin/test starts it.", returncode=3)
    db = settings.DATABASES["default"]
    try:
        with socket.create_connection((db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)), timeout=2):
            pass
    except OSError as exc:
        pytest.exit(f"PostgreSQL is not reachable ({exc}). bin/test starts it.", returncode=3)


@pytest.fixture(autouse=True)
def _celery_join_allowed():
    """Eager tasks run under Celery's process-global "joining would block" flag; two threads running eager tasks
    at once (the race tests) can leave it set, which breaks a later test's `result.get()` on a real worker."""
    _set_task_join_will_block(False)


@pytest.fixture(autouse=True)
def _responses_match_the_spec(request, monkeypatch):
    """Every JSON response that a test receives from an operation of OpenMeter's spec (through Django's test client
    or DRF's) validates against the spec's schema for its status: the contract holds wherever the suite goes.
    A test marked `unchecked_responses(reason)` answers with data the test made up itself (not the server's)."""
    if request.node.get_closest_marker("unchecked_responses"):
        return
    from django.test import Client

    from tests.contract import spec as contract_spec

    request = Client.request

    def checked(self, **environ):
        response = request(self, **environ)
        content_type = response.get("Content-Type", "")
        if environ.get("PATH_INFO", "").startswith("/api/") and content_type.startswith(
                ("application/json", "application/problem+json")) and response.content:
            body = orjson.loads(response.content)
            contract_spec.assert_response_matches_spec(environ["REQUEST_METHOD"], environ["PATH_INFO"], response.status_code,
                                         content_type, body)
        return response

    monkeypatch.setattr(Client, "request", checked)


@pytest.fixture
def api_key(db) -> str:
    _, raw = ApiKey.issue("tests")
    return raw


@pytest.fixture
def api(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s")


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


@contextmanager
def gunicorn_server(**env: str) -> Iterator[str]:
    """gunicorn (one worker, 4 threads) on a free port with the test settings, eager tasks and `env` on top of the
    environment; yields its base URL and stops it when the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "openmeter_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "4", "--log-level", "warning"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "DJANGO_SETTINGS_MODULE": "openmeter_site.settings.test",
            "OPENMETER_WEBHOOK_ALLOW_PRIVATE": "1",
            "CELERY_TASK_ALWAYS_EAGER": "1",
            **env,
        },
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    """gunicorn serving the test database: the real HTTP stack, for the official clients."""
    # thresholds are evaluated after every batch: the once-per-window throttle is a Redis key that in-process
    # ingests of a parallel test worker set too, which would make this server skip its evaluation
    with gunicorn_server(OPENMETER_NOTIFICATION_EVALUATION_DELAY_SECONDS="0") as url:
        yield url
    wait_for_no_connections(settings.DATABASES["default"]["NAME"], django_db_blocker)


def wait_for_no_connections(db_name: str, django_db_blocker, timeout: float = 10) -> None:
    """A stopped server's PostgreSQL sessions end a moment after it exits; the test database is dropped next."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    with django_db_blocker.unblock(), connection.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [db_name])
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.1)


@pytest.fixture
def start_celery_worker(django_db_setup) -> Iterator[Callable[..., str]]:
    """Start a real Celery worker process on Redis against the test database; returns its queue.

    Each worker gets a queue of its own, which is also this test's default queue while it runs (so `.delay()`
    and `send_task` reach it): no message left in Redis by an earlier run, and no worker of a test running in
    parallel, can take this test's tasks."""
    processes: list[subprocess.Popen] = []
    saved = celery_app.conf.task_default_queue, celery_app.conf.task_always_eager

    def start(*, concurrency: int = 1, env: dict[str, str] | None = None) -> str:
        queue = f"tests-{uuid.uuid4().hex[:12]}"
        pool = ["--pool", "solo"] if concurrency == 1 else ["--concurrency", str(concurrency)]
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "openmeter_site", "worker", *pool, "-Q", queue,
             "--loglevel", "WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": test_database_url(), "REDIS_URL": settings.REDIS_URL,
                 "DJANGO_SETTINGS_MODULE": "openmeter_site.settings", "CELERY_TASK_ALWAYS_EAGER": "0",
                 "CELERY_TASK_DEFAULT_QUEUE": queue, **(env or {})},
        )
        processes.append(process)
        celery_app.conf.task_default_queue = queue
        celery_app.conf.task_always_eager = False
        return queue

    try:
        yield start
    finally:
        celery_app.conf.task_default_queue, celery_app.conf.task_always_eager = saved
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test process, shared by the back-office tests (a new context per test)."""
    # Playwright's sync API keeps an event loop in this thread; the tests' own ORM calls are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        shared = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield shared
        shared.close()


OPERATOR = ("operator", "operator-pass-1")


@pytest.fixture
def operator_page(browser, live_server_url, django_user_model) -> Iterator[Page]:
    """A billing operator (a superuser) logged in to the back office in a fresh browser context.
    The test's database must be visible to the live server: mark the test `django_db(transaction=True)`."""
    yield from operator_logged_in(browser, live_server_url, django_user_model)


def operator_logged_in(browser: Browser, server_url: str, django_user_model) -> Iterator[Page]:
    """`operator_page` on the server at `server_url` (a server wired to other services, e.g. localstripe)."""
    from django.db import connections

    django_user_model.objects.create_superuser(OPERATOR[0], "operator@example.com", OPERATOR[1])
    context = browser.new_context(base_url=server_url, timezone_id="Europe/Berlin")
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", OPERATOR[0])
    page.fill("#id_password", OPERATOR[1])
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    try:
        yield page
    finally:
        context.close()
        connections.close_all()  # ORM calls made inside Playwright's loop opened a connection of their own
