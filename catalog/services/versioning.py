"""The lifecycle plans and add-ons share: versions by key, one draft per key, publish, archive, delete.

Status is derived from the effective dates (draft: none; scheduled: from in the future; active;
archived: to in the past). Publishing a version closes the previously effective version of the key.
"""

import datetime as dt
from typing import TypeVar

from django.db import connection
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from catalog.models import CatalogStatus, EffectiveDatedVersion
from openmeter_site.core.errors import InvalidInput, NotFound
from openmeter_site.core.ids import is_ulid

V = TypeVar("V", bound=EffectiveDatedVersion)


def lock_key(model: type[V], key: str) -> None:
    """Serialise version numbering of one key (inside the caller's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{model._meta.label}:{key}"])


def next_version(model: type[V], key: str) -> int:
    lock_key(model, key)
    if model._default_manager.filter(key=key, effective_from__isnull=True, deleted_at__isnull=True).exists():
        raise InvalidInput(f"key {key!r} already has a draft version: only a single draft version is allowed")
    latest = model._default_manager.filter(key=key).aggregate(v=Max("version"))["v"]
    return (latest or 0) + 1


def status_q(status: str, at: dt.datetime) -> Q:
    if status == CatalogStatus.DRAFT:
        return Q(effective_from__isnull=True)
    if status == CatalogStatus.SCHEDULED:
        return Q(effective_from__gt=at)
    if status == CatalogStatus.ACTIVE:
        return Q(effective_from__lte=at) & (Q(effective_to__isnull=True) | Q(effective_to__gt=at))
    return Q(effective_to__lte=at)


def get_version(qs: QuerySet[V], id_or_key: str, *, include_latest: bool = False, label: str) -> V:
    """By id; else by key: the version in effect now (or the latest published), or with `include_latest`
    the highest version including a draft."""
    if is_ulid(id_or_key):
        found = qs.filter(pk=id_or_key.upper()).first()
        if found is not None:
            return found
    live = qs.filter(key=id_or_key, deleted_at__isnull=True)
    if include_latest:
        found = live.order_by("-version").first()
    else:
        now = timezone.now()
        found = live.filter(status_q(CatalogStatus.ACTIVE, now)).order_by("-version").first()
        found = found or live.filter(effective_from__isnull=False).order_by("-version").first()
    if found is None:
        raise NotFound(f"{label} {id_or_key!r} not found")
    return found


def require_status(obj: EffectiveDatedVersion, allowed: tuple[str, ...], action: str, label: str) -> None:
    status = obj.status
    if status not in allowed:
        raise InvalidInput(f"only {label}s in {list(allowed)} can be {action}, but {obj} is {status}")


def publish_version(obj: V, *, effective_from: dt.datetime, effective_to: dt.datetime | None = None) -> V:
    """Set the effective period and close the version of the same key that is in effect (or scheduled)."""
    if effective_to is not None and effective_to <= effective_from:
        raise InvalidInput("effectiveTo must be after effectiveFrom")
    model = type(obj)
    others = model._default_manager.filter(
        key=obj.key, deleted_at__isnull=True, effective_from__isnull=False
    ).exclude(pk=obj.pk)
    for other in others.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=effective_from)):
        assert other.effective_from is not None  # `others` are published versions
        # A version that would start after the new one never becomes effective: close it where it starts.
        other.effective_to = max(other.effective_from, effective_from)
        other.save(update_fields=["effective_to", "updated_at"])
    obj.effective_from = effective_from
    obj.effective_to = effective_to
    obj.save(update_fields=["effective_from", "effective_to", "updated_at"])
    return obj


def archive_version(obj: V, *, at: dt.datetime) -> V:
    obj.effective_to = at
    obj.save(update_fields=["effective_to", "updated_at"])
    return obj


def soft_delete(obj: V, *, at: dt.datetime) -> V:
    obj.deleted_at = at
    obj.save(update_fields=["deleted_at", "updated_at"])
    return obj
