"""Progress of long-running operations (`info.getProgress`): rollup backfills and queries sent with `clientId`.

Kept in Redis (settings.REDIS_URL) with a TTL, as upstream does (5 minutes for queries). Progress is a courtesy:
with Redis down it is not recorded (the operation goes on) and reading it is a 503.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from functools import cache

import orjson
import redis
from django.conf import settings
from django.utils import timezone

from openmeter_site.core.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

QUERY_TTL = 5 * 60
BACKFILL_TTL = 7 * 24 * 3600
_PREFIX = "om:progress:"


def meter_build_id(meter_id: str) -> str:
    """The `info.getProgress` id of the (re)build of a meter's aggregates from stored events (either store)."""
    return f"meter-{meter_id}-rollups"


@dataclass(frozen=True)
class Progress:
    total: int
    success: int
    failed: int
    updated_at: dt.datetime


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


def progress_set(progress_id: str, *, total: int, success: int, failed: int = 0, ttl: int = QUERY_TTL) -> None:
    body = {"total": total, "success": success, "failed": failed, "updatedAt": timezone.now().isoformat()}
    try:
        _client().set(_PREFIX + progress_id, orjson.dumps(body), ex=ttl)
    except redis.RedisError as exc:
        logger.warning("progress %s not recorded, Redis unavailable: %s", progress_id, exc)


def progress_get(progress_id: str) -> Progress | None:
    try:
        raw = _client().get(_PREFIX + progress_id)
    except redis.RedisError as exc:
        raise ServiceUnavailable("progress is kept in Redis, which is unavailable; retry later") from exc
    if raw is None:
        return None
    body = orjson.loads(raw)
    return Progress(
        total=body["total"],
        success=body["success"],
        failed=body["failed"],
        updated_at=dt.datetime.fromisoformat(body["updatedAt"]),
    )
