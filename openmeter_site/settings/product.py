"""OPENMETER_* product settings."""

import os


def _flag(name: str, default: str = "0") -> bool:
    return os.environ.get(name, default).lower() in {"1", "true", "yes", "on"}


# Allow webhook targets on loopback, link-local or private networks (off by default: SSRF guard).
OPENMETER_WEBHOOK_ALLOW_PRIVATE = _flag("OPENMETER_WEBHOOK_ALLOW_PRIVATE")
# Maximum number of events in one ingest request.
OPENMETER_INGEST_MAX_EVENTS = int(os.environ.get("OPENMETER_INGEST_MAX_EVENTS", "10000"))
# Key for encrypting third-party secrets (Stripe API keys) at rest; derived from SECRET_KEY when unset.
OPENMETER_ENCRYPTION_KEY = os.environ.get("OPENMETER_ENCRYPTION_KEY", "")
# Secret for signing consumer portal tokens (JWT HS256); derived from SECRET_KEY when unset.
OPENMETER_PORTAL_TOKEN_SECRET = os.environ.get("OPENMETER_PORTAL_TOKEN_SECRET", "")
# Default lifetime of a portal token.
OPENMETER_PORTAL_TOKEN_TTL_SECONDS = int(os.environ.get("OPENMETER_PORTAL_TOKEN_TTL_SECONDS", "3600"))
# Stripe API base (tests point it at localstripe).
OPENMETER_STRIPE_API_BASE = os.environ.get("OPENMETER_STRIPE_API_BASE", "")
# Public base URL Stripe can reach this server at (e.g. https://billing.example.com); the Stripe app registers
# {base}/api/v1/apps/{id}/stripe/webhook as its webhook endpoint on install. Unset: no endpoint is registered.
OPENMETER_STRIPE_WEBHOOK_BASE_URL = os.environ.get("OPENMETER_STRIPE_WEBHOOK_BASE_URL", "")
# Retries of one Stripe request on network errors, rate limits and 5xx (exponential backoff, same idempotency key).
OPENMETER_STRIPE_MAX_NETWORK_RETRIES = int(os.environ.get("OPENMETER_STRIPE_MAX_NETWORK_RETRIES", "3"))
