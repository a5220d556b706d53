"""Stripe on loopback: localstripe (plus the endpoints it lacks, see localstripe_plus.py), and a live server wired to it."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, test_database_url, wait_for_port

LAUNCHER = Path(__file__).with_name("localstripe_plus.py")
TEST_KEY = "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc"


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(LAUNCHER), str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def stripe_api(settings, localstripe_url) -> str:
    """Point our Stripe calls at localstripe for this test."""
    settings.OPENMETER_STRIPE_API_BASE = localstripe_url
    return localstripe_url


@pytest.fixture(scope="session")
def stripe_live_server_url(django_db_setup, django_db_blocker, localstripe_url) -> Iterator[str]:
    """gunicorn on the test database, talking to localstripe and registering itself as the webhook target."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "DJANGO_SETTINGS_MODULE": "openmeter_site.settings",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "OPENMETER_STRIPE_API_BASE": localstripe_url,
        "OPENMETER_STRIPE_WEBHOOK_BASE_URL": url,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "openmeter_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "4", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    try:
        wait_for_port(port, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
