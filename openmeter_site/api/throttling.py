"""Per-API-key request limits (a DRF throttle), counted in Redis so that every web worker shares them.

OPENMETER_API_RATE_LIMIT limits each key on every API endpoint but the events endpoint, which has its own
OPENMETER_INGEST_RATE_LIMIT (views name their scope in `throttle_scope`). A limit reads "N/second", "N/minute",
"N/hour" or "N/day"; empty means none, the default for both. Windows are fixed (the counter of the current
second, minute, ... of the key). Over the limit: a 429 problem with Retry-After, the seconds left in the window.
When Redis does not answer, requests pass (and it is logged): a limit must not take the API down with it.
"""

import logging
import math
import re
import time
from functools import cache

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
SETTING_OF_SCOPE = {"api": "OPENMETER_API_RATE_LIMIT", "ingest": "OPENMETER_INGEST_RATE_LIMIT"}


@cache
def parse_rate(setting: str, text: str) -> tuple[int, int] | None:
    """(requests allowed, window in seconds), or None for no limit."""
    if not text.strip():
        return None
    match = _RATE_RE.match(text)
    if match is None:
        raise ImproperlyConfigured(f"{setting}={text!r}: expected N/second, N/minute, N/hour or N/day")
    return int(match[1]), _PERIOD_SECONDS[match[2]]


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)


def count_request(key: str, window_seconds: int) -> int:
    """Count one request in the key's window; returns the window's count so far."""
    pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, window_seconds + 1)
    count, _ = pipe.execute()
    return int(count)


class ApiKeyRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: object) -> bool:
        scope = getattr(view, "throttle_scope", "api")
        setting = SETTING_OF_SCOPE[scope]
        rate = parse_rate(setting, getattr(settings, setting))
        key_id = getattr(request.auth, "pk", None)
        if rate is None or key_id is None:
            return True
        limit, window = rate
        now = time.time()
        try:
            count = count_request(f"om:throttle:{scope}:{key_id}:{int(now // window)}", window)
        except redis.RedisError as exc:
            logger.warning("rate limit not applied, Redis did not answer: %s", exc)
            return True
        if count <= limit:
            return True
        self.retry_after = window - now % window
        return False

    def wait(self) -> float | None:
        return math.ceil(self.retry_after) if self.retry_after is not None else None
