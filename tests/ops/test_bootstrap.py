"""bin/run's first-start set-up: the admin login and the startup API key are made and printed once; later starts
change nothing and say where to look."""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from openmeter_site.core.models import ApiKey, hash_secret

pytestmark = pytest.mark.django_db


def bootstrap() -> str:
    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    return out.getvalue()


def test_first_start_makes_and_prints_the_login_and_key_once(settings, client):
    # given
    settings.OPENMETER_ADMIN_PASSWORD = ""
    # when: the first start
    first = bootstrap()
    # then
    password = re.search(r"Admin user: admin  password: (\S+)  \(shown once\)", first)[1]
    raw_key = re.search(r"^API key: (om_\S+)$", first, flags=re.MULTILINE)[1]
    key = ApiKey.objects.get()
    assert (key.name, key.key_hash, key.revoked_at) == ("bin/run startup key", hash_secret(raw_key), None)
    assert client.login(username="admin", password=password)
    # when: a second start
    second = bootstrap()
    # then nothing new, nothing reset, no secret printed, and where to go instead
    assert ApiKey.objects.count() == 1
    assert client.login(username="admin", password=password)
    assert password not in second and raw_key not in second and "API key: " not in second
    assert f"Startup API key {key.prefix}… was shown on first start" in second
    assert "bin/manage create_api_key NAME" in second and "bin/manage changepassword admin" in second


def test_a_revoked_startup_key_is_replaced_on_the_next_start(settings):
    settings.OPENMETER_ADMIN_PASSWORD = "a-Long-given-passw0rd"
    first = bootstrap()
    assert "password: from OPENMETER_ADMIN_PASSWORD" in first and "a-Long-given-passw0rd" not in first
    assert get_user_model().objects.get(username="admin").check_password("a-Long-given-passw0rd")
    ApiKey.objects.update(revoked_at="2026-01-01T00:00:00Z")
    again = bootstrap()
    assert re.search(r"^API key: om_\S+$", again, flags=re.MULTILINE)
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 1
