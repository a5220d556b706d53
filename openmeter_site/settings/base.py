"""Settings, all from environment variables with safe defaults (README lists every one)."""

import dj_database_url

from openmeter_site.ops.logs import logging_config

from .env import BASE_DIR, env_bool, env_int, env_list, env_str, secret_key

SECRET_KEY = secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# Origins allowed to POST forms (the admin) when they differ from the Host, e.g. https://billing.example.com.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "openmeter_site.admin_ui",  # before the admin: its templates extend the admin's
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular_sidecar",  # Swagger UI's static files for /api/docs
    "django_celery_beat",
    "openmeter_site.core",
    "openmeter_site.outbox",
    "metering",
    "customers",
    "catalog",
    "entitlements",
    "billing",
    "notifications",
    "portal",
    "integrations",
    "subscriptions",
    "backoffice",
]

MIDDLEWARE = [
    "openmeter_site.ops.middleware.RequestLogMiddleware",  # request id, the request's log line and metrics
    "openmeter_site.ops.middleware.ProbesMiddleware",  # /healthz, /readyz, /metrics before host checks and redirects
    "openmeter_site.api.middleware.RawPathMiddleware",
    "openmeter_site.api.middleware.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "openmeter_site.admin_ui.middleware.OperatorTimeZoneMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The SDKs never send trailing slashes and follow redirects (a 301 turns POST into GET): never redirect.
APPEND_SLASH = False

ROOT_URLCONF = "openmeter_site.urls"
# urls.py names the 400/403/404/500 handlers; a CSRF failure under /api/ is a problem+json 403 too.
CSRF_FAILURE_VIEW = "openmeter_site.api.problems.csrf_failure_view"
WSGI_APPLICATION = "openmeter_site.wsgi.application"
ASGI_APPLICATION = "openmeter_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/openmeter")
# Our backend is Django's PostgreSQL one with a health check that needs no round trip (openmeter_site/core/db).
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, engine="openmeter_site.core.db", conn_max_age=600, conn_health_checks=True
    )
}
# Hot-path statements asking for it are prepared once per connection (openmeter_site/core/sql.py); Django's own
# queries never are. Off (0) behind a pooler in transaction mode without prepared statements (pgbouncer < 1.21).
if env_bool("OPENMETER_DB_PREPARED_STATEMENTS", True):
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The admin's user/password login behind a failure count (openmeter_site/core/login_throttle.py).
AUTHENTICATION_BACKENDS = ["openmeter_site.core.login_throttle.ThrottledModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in ("UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
                 "NumericPasswordValidator")
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles"))

# Upper bound of an ingest request body (a 413 problem beyond it).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("OPENMETER_MAX_BODY_BYTES", 10 * 1024 * 1024)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# json: one JSON object per line (request and task lines, request/task ids); text: plain lines for development.
LOG_FORMAT = env_str("LOG_FORMAT", "json")
LOGGING = logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT)

from .api import *  # noqa: E402, F403
from .celery import *  # noqa: E402, F403
from .product import *  # noqa: E402, F403
