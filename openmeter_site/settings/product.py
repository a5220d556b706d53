"""OPENMETER_* product settings."""

from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list, env_str

# Where usage events are stored and aggregated (metering.event_store): postgres or clickhouse.
OPENMETER_EVENTS_BACKEND = env_str("OPENMETER_EVENTS_BACKEND", "postgres").strip().lower() or "postgres"
if OPENMETER_EVENTS_BACKEND not in ("postgres", "clickhouse"):
    raise ImproperlyConfigured(f"OPENMETER_EVENTS_BACKEND={OPENMETER_EVENTS_BACKEND!r}: expected postgres or clickhouse")
# The ClickHouse server (or cluster) of the clickhouse backend: http(s)://user:password@host:port/database, or
# chdb:///path (ClickHouse's engine in process: tests and single-process trials).
CLICKHOUSE_URL = env_str("CLICKHOUSE_URL", "http://default@127.0.0.1:8123/openmeter")

# Events (PostgreSQL store) are dropped by whole months this many days after a month ends, once their usage is
# folded and every invoice covering them is issued (0: kept forever).
OPENMETER_EVENTS_RETENTION_DAYS = env_int("OPENMETER_EVENTS_RETENTION_DAYS", 0)

# Allow webhook targets on loopback, link-local or private networks (off by default: SSRF guard).
OPENMETER_WEBHOOK_ALLOW_PRIVATE = env_bool("OPENMETER_WEBHOOK_ALLOW_PRIVATE", False)
# Maximum number of events in one ingest request.
OPENMETER_INGEST_MAX_EVENTS = env_int("OPENMETER_INGEST_MAX_EVENTS", 10000)
# Key for encrypting third-party secrets (Stripe API keys) at rest; derived from SECRET_KEY when unset.
OPENMETER_ENCRYPTION_KEY = env_str("OPENMETER_ENCRYPTION_KEY")
# Default lifetime of a portal token.
OPENMETER_PORTAL_TOKEN_TTL_SECONDS = env_int("OPENMETER_PORTAL_TOKEN_TTL_SECONDS", 3600)
# Stripe API base (tests point it at localstripe).
OPENMETER_STRIPE_API_BASE = env_str("OPENMETER_STRIPE_API_BASE")
# Public base URL Stripe can reach this server at (e.g. https://billing.example.com); the Stripe app registers
# {base}/api/v1/apps/{id}/stripe/webhook as its webhook endpoint on install. Unset: no endpoint is registered.
OPENMETER_STRIPE_WEBHOOK_BASE_URL = env_str("OPENMETER_STRIPE_WEBHOOK_BASE_URL")
# Retries of one Stripe request on network errors, rate limits and 5xx (exponential backoff, same idempotency key).
OPENMETER_STRIPE_MAX_NETWORK_RETRIES = env_int("OPENMETER_STRIPE_MAX_NETWORK_RETRIES", 3)
# Webhook delivery: timeout of one POST, attempts per send round, first retry delay (doubles, capped at 6 h).
OPENMETER_WEBHOOK_TIMEOUT_SECONDS = env_int("OPENMETER_WEBHOOK_TIMEOUT_SECONDS", 10)
OPENMETER_WEBHOOK_MAX_ATTEMPTS = env_int("OPENMETER_WEBHOOK_MAX_ATTEMPTS", 6)
OPENMETER_WEBHOOK_RETRY_BASE_SECONDS = env_int("OPENMETER_WEBHOOK_RETRY_BASE_SECONDS", 30)
# After ingest, balance thresholds are evaluated once per this window (0 = after every batch).
OPENMETER_NOTIFICATION_EVALUATION_DELAY_SECONDS = env_int("OPENMETER_NOTIFICATION_EVALUATION_DELAY_SECONDS", 5)
# Entitlement balance snapshots are saved only once older than this grace window, so late events stay counted.
OPENMETER_ENTITLEMENT_GRACE_SECONDS = env_int("OPENMETER_ENTITLEMENT_GRACE_SECONDS", 86400)
# /metrics: a bearer token that may scrape from anywhere, and the client networks that need none (loopback).
OPENMETER_METRICS_TOKEN = env_str("OPENMETER_METRICS_TOKEN")
OPENMETER_METRICS_ALLOWED_NETWORKS = env_list("OPENMETER_METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
# The admin login bin/run makes on first start (the password: random and printed once, unless given here).
OPENMETER_ADMIN_USER = env_str("OPENMETER_ADMIN_USER", "admin")
OPENMETER_ADMIN_PASSWORD = env_str("OPENMETER_ADMIN_PASSWORD")
# Scheduled job runs (admin *Job runs*, dashboard) are kept this many days.
OPENMETER_JOB_RUN_RETENTION_DAYS = env_int("OPENMETER_JOB_RUN_RETENTION_DAYS", 7)
# Per-API-key request limits ("N/second|minute|hour|day", empty: none): every endpoint but the events endpoint, and
# the events endpoint (ingest) on its own.
OPENMETER_API_RATE_LIMIT = env_str("OPENMETER_API_RATE_LIMIT")
OPENMETER_INGEST_RATE_LIMIT = env_str("OPENMETER_INGEST_RATE_LIMIT")
# Admin login throttling: this many failed logins for one user name from one address lock it out for this long.
OPENMETER_ADMIN_LOGIN_MAX_FAILURES = env_int("OPENMETER_ADMIN_LOGIN_MAX_FAILURES", 5)
OPENMETER_ADMIN_LOGIN_LOCKOUT_SECONDS = env_int("OPENMETER_ADMIN_LOGIN_LOCKOUT_SECONDS", 900)
