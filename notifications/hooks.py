"""What notifications does when metering stores usage (HOT PATH: registered in `NotificationsConfig.ready`)."""

from functools import cache

import redis
from django.conf import settings
from django.db import transaction

from notifications.conf import evaluation_delay_seconds
from openmeter_site.core.broker import kick

THROTTLE_KEY = "openmeter:notifications:evaluate-new-usage"


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


def usage_ingested() -> None:
    """After an ingest: evaluate balance thresholds of the new usage at the end of the current window.

    At most one evaluation is queued per window (a Redis SET NX), so the ingest path pays one Redis round trip;
    the evaluation reads every event stored since the previous one, and a beat job runs it every minute anyway,
    which is also what covers a Redis outage (nothing is queued then, and the request does not wait).
    """
    from notifications.tasks import evaluate_new_usage_task

    delay = evaluation_delay_seconds()
    if delay > 0:
        try:
            if not _redis().set(THROTTLE_KEY, 1, nx=True, ex=delay):
                return
        except redis.RedisError:
            return
    transaction.on_commit(lambda: kick(evaluate_new_usage_task, countdown=delay), robust=True)
