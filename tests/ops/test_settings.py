"""Production settings and the one place the environment is read."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import InvalidToken
from django.core.exceptions import ImproperlyConfigured

from openmeter_site.core import crypto
from openmeter_site.settings import env

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, **environ: str) -> subprocess.CompletedProcess:
    # DJANGO_ALLOW_ASYNC_UNSAFE is the test process's own (its browser tests set it); a deployment never has it
    unset = {"SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "DJANGO_SETTINGS_MODULE": "openmeter_site.settings.production", **environ},
                          timeout=120)


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    key = "x9Qz-Lw3pV7mN2bR8tY5uI1oP4aS6dF0gHk2Jc7Vb1Nm3Ql5We8Rt0Yu"
    result = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=key, OPENMETER_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_refuse_the_development_secret_key(tmp_path):
    # given no SECRET_KEY and a data directory without a generated key
    result = manage("check", OPENMETER_DATA_DIR=str(tmp_path))
    # then
    assert result.returncode != 0
    assert "SECRET_KEY is the development default" in result.stderr


def test_production_settings_accept_the_key_bin_run_generated(tmp_path):
    # given the data directory's key (what bin/run writes on first start)
    result = subprocess.run(
        [sys.executable, "-c", "from openmeter_site.settings.env import ensure_secret_key_file as e; print(e())"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OPENMETER_DATA_DIR": str(tmp_path)}, check=True,
    )
    key_file = Path(result.stdout.strip())
    # then it is the owner's alone, and production settings start with it
    assert key_file == tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert manage("check", OPENMETER_DATA_DIR=str(tmp_path)).returncode == 0


def test_the_secret_key_file_is_made_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("OPENMETER_DATA_DIR", str(tmp_path))
    assert env.secret_key() == env.DEVELOPMENT_SECRET_KEY
    env.ensure_secret_key_file()
    first = env.secret_key()
    env.ensure_secret_key_file()
    assert env.secret_key() == first != env.DEVELOPMENT_SECRET_KEY
    assert len(first) >= 50
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert env.secret_key() == "from-the-environment"


def test_malformed_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("PORT", "eighty")
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="PORT='eighty'"):
        env.env_int("PORT", 8000)
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe'"):
        env.env_bool("DEBUG")
    monkeypatch.setenv("ALLOWED_HOSTS", " a.example, ,b.example ")
    assert env.env_list("ALLOWED_HOSTS") == ["a.example", "b.example"]


def test_no_settings_module_reads_the_environment_itself():
    settings_dir = ROOT / "openmeter_site" / "settings"
    readers = [p.name for p in settings_dir.glob("*.py") if p.name != "env.py" and "os.environ.get" in p.read_text()]
    assert readers == []


def test_secrets_stored_under_the_development_key_stay_readable_after_a_real_key(settings):
    # given a Stripe key stored while the server ran on the development secret
    settings.SECRET_KEY, settings.OPENMETER_ENCRYPTION_KEY = env.DEVELOPMENT_SECRET_KEY, ""
    old_token = crypto.encrypt("sk_test_123")
    # when bin/run generated a real secret
    settings.SECRET_KEY = "generated-" + "x" * 50
    # then the old token still reads, new ones use the real key only
    assert crypto.decrypt(old_token) == "sk_test_123"
    new_token = crypto.encrypt("sk_test_456")
    settings.SECRET_KEY = "another-" + "y" * 50
    with pytest.raises(InvalidToken):
        crypto.decrypt(new_token)
