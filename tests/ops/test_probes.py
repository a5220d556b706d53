"""/healthz and /readyz: no authentication; readiness names each dependency that failed."""

import pytest
import requests
from django.db import connection, connections
from rest_framework.test import APIClient

from openmeter_site.ops import probes
from tests import conftest
from tests.conftest import free_port


@pytest.fixture
def client():
    return APIClient()  # no API key


def test_healthz_answers_without_auth_or_database(client):
    response = client.get("/healthz")  # no django_db mark: any database access would raise
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ready_with_database_migrations_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok", "redis": "ok"}}


@pytest.mark.django_db
def test_readyz_is_a_503_naming_redis_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["redis"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("ConnectionError")


def test_probes_answer_any_host_header(client, settings):
    # a load balancer addresses the container by IP: not in ALLOWED_HOSTS, still answered
    settings.ALLOWED_HOSTS = ["billing.example.com"]
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/api/v1/info/currencies", HTTP_HOST="10.1.2.3:8000").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_migrations_check_names_what_is_not_applied_on_an_empty_database():
    # given a real, empty database
    empty = f"{connection.settings_dict['NAME']}_empty"
    with connection.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{empty}"')
        cur.execute(f'CREATE DATABASE "{empty}"')
    wrapper = connections["default"].__class__({**connection.settings_dict, "NAME": empty}, alias="readyz_empty")
    try:
        # when
        pending = probes.unapplied_migrations(wrapper)
    finally:
        wrapper.close()
        with connection.cursor() as cur:
            cur.execute(f'DROP DATABASE "{empty}"')
    # then every app's first migration is among them, and none on the migrated test database
    assert {"core.0001_initial", "metering.0001_initial", "billing.0001_initial"} <= set(pending)
    assert probes.unapplied_migrations(connection) == []


def test_with_the_database_unreachable_healthz_is_ok_and_readyz_names_the_database():
    nowhere = f"postgres://postgres@127.0.0.1:{free_port()}/openmeter"  # nothing listens there
    with conftest.gunicorn_server(DATABASE_URL=nowhere) as url:
        assert requests.get(f"{url}/healthz", timeout=30).json() == {"status": "ok"}
        response = requests.get(f"{url}/readyz", timeout=30)
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database"]
    assert body["checks"]["database"].startswith("OperationalError")
    assert body["checks"]["migrations"] == "not checked: no database"
    assert body["checks"]["redis"] == "ok"
