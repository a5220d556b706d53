"""Admin login throttling: after N failures for a user name from one address, even the right password is refused
for a while; a success clears the count; other addresses are not affected."""

import uuid

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from openmeter_site.core.login_throttle import _key
from tests.conftest import free_port

pytestmark = pytest.mark.django_db

PASSWORD = "correct-Horse-battery-9"


@pytest.fixture
def username():
    name = f"operator-{uuid.uuid4().hex[:8]}"  # Redis outlives test databases: a name of its own
    get_user_model().objects.create_superuser(username=name, email="", password=PASSWORD)
    return name


def log_in(client: Client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"},
                       REMOTE_ADDR=address)


def test_five_failures_lock_the_name_out_from_that_address(username, settings):
    settings.OPENMETER_ADMIN_LOGIN_MAX_FAILURES = 5
    client = Client()
    for _ in range(5):
        assert log_in(client, username, "wrong").status_code == 200  # the form again, with an error
    # when: the right password, sixth attempt
    refused = log_in(client, username, PASSWORD)
    # then
    assert refused.status_code == 200
    assert "Too many failed logins. Try again in 15 minutes" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    # from another address the same name still logs in
    assert log_in(Client(), username, PASSWORD, address="198.51.100.7").status_code == 302
    # the lock-out ends with the Redis key, at most the lock-out time after the last failure
    ttl = redis.Redis.from_url(django_settings.REDIS_URL).ttl(_key(refused.wsgi_request, username))
    assert 0 < ttl <= 900


def test_a_success_clears_the_count(username, settings):
    settings.OPENMETER_ADMIN_LOGIN_MAX_FAILURES = 3
    client = Client()
    for _ in range(2):
        log_in(client, username, "wrong")
    assert log_in(client, username, PASSWORD).status_code == 302
    client = Client()
    for _ in range(2):
        log_in(client, username, "wrong")
    assert log_in(client, username, PASSWORD).status_code == 302  # 2 failures since the success: not locked


def test_logins_work_when_redis_does_not_answer(username, settings):
    settings.OPENMETER_ADMIN_LOGIN_MAX_FAILURES = 1
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    client = Client()
    log_in(client, username, "wrong")
    assert log_in(client, username, PASSWORD).status_code == 302
