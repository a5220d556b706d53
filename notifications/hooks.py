"""Calls other apps make into notifications. Kept tiny: they sit on hot paths."""

from functools import cache

import redis
from django.conf import settings
from django.db import transaction

from notifications.conf import evaluation_delay_seconds

THROTTLE_KEY = "openmeter:notifications:evaluate-new-usage"


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


def usage_ingested() -> None:
    """After an ingest commits: evaluate balance thresholds of the new usage at the end of the current window.

    At most one evaluation is queued per window (a Redis SET NX), so the ingest path pays one Redis round trip;
    the evaluation reads every event stored since the previous one, and a beat job runs it every minute anyway.
    """
    from notifications.tasks import evaluate_new_usage_task

    delay = evaluation_delay_seconds()
    if delay > 0:
        try:
            if not _redis().set(THROTTLE_KEY, 1, nx=True, ex=delay):
                return
        except redis.RedisError:
            pass  # better one evaluation too many than none
    # robust: a broker outage must not turn a stored batch into a 500 (the beat job evaluates it a minute later)
    transaction.on_commit(lambda: evaluate_new_usage_task.apply_async(countdown=delay), robust=True)
