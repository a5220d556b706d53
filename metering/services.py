"""Metering operations: ingest, meters, subjects."""

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from metering.event_store import event_store
from metering.events.ingest import parse_ingest_body
from metering.models import Meter, MeterAggregation, Subject
from openmeter_site.core.errors import Conflict, InvalidInput, NotFound

GROUP_BY_KEY_RE = re.compile(r"^[a-zA-Z0-9_]+$")
RESERVED_GROUP_BY_KEYS = {"subject", "customer_id"}


# --- events ---------------------------------------------------------------------------------------------------------


def events_ingest(*, body: bytes, content_type: str | None, at: dt.datetime | None = None) -> int:
    """Validate and store a request's events all-or-nothing; returns how many were new (the rest were duplicates)."""
    batch = parse_ingest_body(body, content_type, now=at or timezone.now())
    return event_store().store_batch(batch)


# --- meters ---------------------------------------------------------------------------------------------------------


def _check_jsonpath(path: str, field: str) -> None:
    """`path` must be a JSONPath that the event store can evaluate."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise InvalidInput(f"{field}: invalid JSONPath {path!r}: must start with $")
    if not event_store().json_path_valid(path):
        raise InvalidInput(f"{field}: invalid JSONPath {path!r}")


def _check_group_by(group_by: Mapping[str, str]) -> None:
    for key, path in group_by.items():
        if not GROUP_BY_KEY_RE.match(key):
            raise InvalidInput(f"groupBy: key {key!r} must consist of alphanumeric and underscore characters")
        if key in RESERVED_GROUP_BY_KEYS:
            raise InvalidInput(f"groupBy: {key!r} is reserved")
        _check_jsonpath(path, f"groupBy.{key}")


def meter_check_definition(*, aggregation: str, value_property: str | None, group_by: Mapping[str, str]) -> None:
    """The meter's JSONPaths must be valid; valueProperty is required except for COUNT."""
    if aggregation != MeterAggregation.COUNT:
        if not value_property:
            raise InvalidInput(f"valueProperty: required for {aggregation} meters")
        _check_jsonpath(value_property, "valueProperty")
    _check_group_by(group_by)


def meter_create(
    *,
    slug: str,
    aggregation: str,
    event_type: str,
    name: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, str] | None = None,
    event_from: dt.datetime | None = None,
    value_property: str | None = None,
    group_by: Mapping[str, str] | None = None,
) -> Meter:
    """Create a meter; its aggregates are built from the events already stored (queries read raw events until
    they are)."""
    meter_check_definition(aggregation=aggregation, value_property=value_property, group_by=group_by or {})
    if aggregation == MeterAggregation.COUNT:
        value_property = None
    if Meter.objects.filter(slug=slug, deleted_at__isnull=True).exists():
        raise Conflict(f"meter with slug {slug!r} already exists")
    try:
        with transaction.atomic():
            meter = Meter.objects.create(
                slug=slug,
                name=name or slug,
                description=description,
                metadata=dict(metadata or {}),
                aggregation=aggregation,
                event_type=event_type,
                event_from=event_from,
                value_property=value_property,
                group_by=dict(group_by or {}),
            )
            event_store().aggregates_rebuild(meter=meter)
    except IntegrityError as exc:  # a concurrent create took the slug between the check and the insert
        raise Conflict(f"meter with slug {slug!r} already exists") from exc
    return meter


def meter_update(
    *,
    meter: Meter,
    name: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, str] | None = None,
    group_by: Mapping[str, str] | None = None,
) -> Meter:
    """Replace name, description and metadata; a changed groupBy (when given) rebuilds the aggregates."""
    if group_by is not None:
        _check_group_by(group_by)
    with transaction.atomic():
        meter.name = name or meter.slug
        meter.description = description
        meter.metadata = dict(metadata or {})
        rebuild = group_by is not None and dict(group_by) != meter.group_by
        if rebuild:
            meter.group_by = dict(group_by or {})
        meter.save(update_fields=["name", "description", "metadata", "group_by", "updated_at"])
        if rebuild:
            event_store().aggregates_rebuild(meter=meter)
    return meter


def meter_delete(*, meter: Meter, at: dt.datetime | None = None) -> None:
    """Soft delete: the meter disappears from lists and queries; its slug becomes free again."""
    with transaction.atomic():
        if Meter.objects.filter(pk=meter.pk, deleted_at__isnull=True).update(deleted_at=at or timezone.now()):
            event_store().aggregates_drop(meter=meter)


def meter_rebuild_rollups(*, meter: Meter) -> Meter:
    """Drop and rebuild a meter's aggregates (admin action; also the repair path)."""
    with transaction.atomic():
        event_store().aggregates_rebuild(meter=meter)
    return meter


# --- subjects -------------------------------------------------------------------------------------------------------

SUBJECT_FIELDS = ("display_name", "metadata", "current_period_start", "current_period_end", "stripe_customer_id")


def subjects_upsert(*, items: Sequence[Mapping[str, Any]]) -> list[Subject]:
    """Create subjects or update the given fields of existing ones (by key); fields not sent are kept."""
    keys = [item["key"] for item in items]
    if len(set(keys)) != len(keys):
        raise InvalidInput("duplicate subject keys in the request")
    out: list[Subject] = []
    with transaction.atomic():
        # Insert the new keys first, in key order, skipping those that exist (or that a concurrent upsert is
        # inserting: this waits for it), then lock every row in key order: concurrent upserts of the same keys
        # wait for each other instead of failing on the unique key or deadlocking.
        Subject.objects.bulk_create([Subject(key=key) for key in sorted(keys)], ignore_conflicts=True)
        existing = {s.key: s for s in Subject.objects.select_for_update().filter(key__in=keys).order_by("key")}
        for item in items:
            subject = existing.get(item["key"]) or Subject(key=item["key"])
            for name in SUBJECT_FIELDS:
                if name in item:
                    setattr(subject, name, item[name])
            subject.save()
            out.append(subject)
    return out


def subject_delete(*, subject: Subject) -> None:
    subject.delete()


def subject_get(*, id_or_key: str) -> Subject:
    subject = Subject.objects.filter(key=id_or_key).first() or Subject.objects.filter(pk=id_or_key).first()
    if subject is None:
        raise NotFound(f"subject not found: {id_or_key}")
    return subject
