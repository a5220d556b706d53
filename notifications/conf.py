"""Webhook delivery settings (defined with their defaults in openmeter_site/settings/product.py)."""

from django.conf import settings


def webhook_timeout_seconds() -> int:
    """OPENMETER_WEBHOOK_TIMEOUT_SECONDS (default 10): how long one attempt may take in all."""
    return settings.OPENMETER_WEBHOOK_TIMEOUT_SECONDS


def webhook_max_attempts() -> int:
    """OPENMETER_WEBHOOK_MAX_ATTEMPTS (default 6): attempts per send round before the delivery is FAILED."""
    return settings.OPENMETER_WEBHOOK_MAX_ATTEMPTS


def webhook_retry_base_seconds() -> int:
    """OPENMETER_WEBHOOK_RETRY_BASE_SECONDS (default 30): the first retry delay; it doubles on each retry."""
    return settings.OPENMETER_WEBHOOK_RETRY_BASE_SECONDS


def retry_delay_seconds(failed_attempts: int) -> int:
    """Exponential backoff: base, 2·base, 4·base, … capped at 6 hours."""
    return min(webhook_retry_base_seconds() * 2 ** max(failed_attempts - 1, 0), 6 * 3600)


def evaluation_delay_seconds() -> int:
    """OPENMETER_NOTIFICATION_EVALUATION_DELAY_SECONDS (default 5): after ingest, thresholds are evaluated once
    per this window (one queued evaluation covers every batch ingested meanwhile); 0 = after every batch."""
    return settings.OPENMETER_NOTIFICATION_EVALUATION_DELAY_SECONDS
