"""The environment, read in one place: every variable of the README's configuration table is parsed here.

Settings modules call these helpers and nothing else touches `os.environ` for configuration. A malformed value
(`PORT=eighty`) stops the start with the variable's name rather than a bare ValueError.
"""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# The development fallback of SECRET_KEY; the production settings refuse to start with it.
DEVELOPMENT_SECRET_KEY = "dev-insecure-change-me"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a whole number") from None


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated list; blanks dropped."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def data_dir() -> Path:
    """Where bin/run keeps its state: the embedded services' data and the generated secret key."""
    return Path(env_str("OPENMETER_DATA_DIR", str(BASE_DIR / ".data"))).resolve()


def secret_key_file() -> Path:
    return data_dir() / "secret_key"


def secret_key() -> str:
    """SECRET_KEY from the environment, else the key bin/run generated into the data directory, else the
    development default (which the production settings refuse)."""
    if key := env_str("SECRET_KEY"):
        return key
    path = secret_key_file()
    if path.is_file():
        return path.read_text().strip()
    return DEVELOPMENT_SECRET_KEY


def ensure_secret_key_file() -> Path:
    """Generate the data directory's secret key once (mode 0600, owner only); later calls keep it."""
    path = secret_key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(50) + "\n")
    return path
