"""Progress of long-running operations (`info.getProgress`): rollup backfills and queries sent with `clientId`.

Kept in Redis (settings.REDIS_URL) with a TTL, as upstream does (5 minutes for queries).
"""

import datetime as dt
from dataclasses import dataclass
from functools import cache

import orjson
import redis
from django.conf import settings
from django.utils import timezone

QUERY_TTL = 5 * 60
BACKFILL_TTL = 7 * 24 * 3600
_PREFIX = "om:progress:"


@dataclass(frozen=True)
class Progress:
    total: int
    success: int
    failed: int
    updated_at: dt.datetime


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def progress_set(progress_id: str, *, total: int, success: int, failed: int = 0, ttl: int = QUERY_TTL) -> None:
    body = {"total": total, "success": success, "failed": failed, "updatedAt": timezone.now().isoformat()}
    _client().set(_PREFIX + progress_id, orjson.dumps(body), ex=ttl)


def progress_get(progress_id: str) -> Progress | None:
    raw = _client().get(_PREFIX + progress_id)
    if raw is None:
        return None
    body = orjson.loads(raw)
    return Progress(
        total=body["total"],
        success=body["success"],
        failed=body["failed"],
        updated_at=dt.datetime.fromisoformat(body["updatedAt"]),
    )
