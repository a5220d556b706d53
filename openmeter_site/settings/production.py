"""Production: the base settings plus what `manage.py check --deploy` asks for, each switchable by environment.

The container image runs with these (DJANGO_SETTINGS_MODULE=openmeter_site.settings.production). TLS is expected
to end at a proxy in front: gunicorn trusts its X-Forwarded-Proto only from FORWARDED_ALLOW_IPS.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import SECRET_KEY
from .env import DEVELOPMENT_SECRET_KEY, env_bool, env_int

if SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is the development default: set SECRET_KEY (e.g. python -c 'import secrets; "
        "print(secrets.token_urlsafe(50))') or let bin/run generate one into OPENMETER_DATA_DIR"
    )

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Probes and the scraper talk plain HTTP to the container; a redirect would fail them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
if not SECURE_HSTS_PRELOAD:
    # Submitting a domain to the browsers' preload list is the domain owner's decision (SECURE_HSTS_PRELOAD=1).
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
