"""Features: what a customer can be entitled to. A feature is metered when it names a meter.

Deleting a feature archives it: existing entitlements keep working, new ones are refused.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from psycopg import sql

from catalog.models import Feature
from metering.filters import compile_filter_string
from metering.models import Meter
from openmeter_site.core.errors import Conflict, InvalidInput, NotFound
from openmeter_site.core.ids import is_ulid


def feature_create(
    *,
    key: str,
    name: str,
    meter_slug: str | None = None,
    meter_group_by_filters: Mapping[str, str] | None = None,
    advanced_meter_group_by_filters: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    unit_cost: Mapping[str, Any] | None = None,
) -> Feature:
    meter = None
    if meter_slug:
        meter = Meter.objects.filter(slug=meter_slug, deleted_at__isnull=True).first()
        if meter is None:
            raise InvalidInput(f"meterSlug: meter {meter_slug!r} not found")
        for field, filters in (("meterGroupByFilters", meter_group_by_filters),
                               ("advancedMeterGroupByFilters", advanced_meter_group_by_filters)):
            unknown = sorted(set(filters or {}) - set(meter.group_by or {}))
            if unknown:
                raise InvalidInput(f"{field}: {', '.join(unknown)} not in the meter's groupBy")
        for group_key, spec in (advanced_meter_group_by_filters or {}).items():
            compile_filter_string(sql.Identifier(group_key), spec, f"advancedMeterGroupByFilters.{group_key}")
    elif meter_group_by_filters or advanced_meter_group_by_filters:
        raise InvalidInput("meterGroupByFilters/advancedMeterGroupByFilters: requires meterSlug")
    if Feature.objects.filter(key=key, archived_at__isnull=True).exists():
        raise Conflict(f"key: a feature with key {key!r} already exists")
    try:
        with transaction.atomic():
            return Feature.objects.create(
                key=key,
                name=name,
                meter=meter,
                meter_slug=meter.slug if meter else None,
                meter_group_by_filters=dict(meter_group_by_filters) if meter_group_by_filters else None,
                advanced_meter_group_by_filters=dict(advanced_meter_group_by_filters)
                if advanced_meter_group_by_filters
                else None,
                metadata=dict(metadata or {}),
                unit_cost=dict(unit_cost) if unit_cost else None,
            )
    except IntegrityError as exc:
        raise Conflict(f"key: a feature with key {key!r} already exists") from exc


def feature_get(*, id_or_key: str, include_archived: bool = True) -> Feature:
    """By ULID, else the live feature with that key."""
    qs = Feature.objects.select_related("meter")
    feature = qs.filter(pk=id_or_key.upper()).first() if is_ulid(id_or_key) else None
    if feature is None:
        feature = qs.filter(key=id_or_key, archived_at__isnull=True).first()
    if feature is None or (not include_archived and feature.archived_at is not None):
        raise NotFound(f"feature {id_or_key!r} not found")
    return feature


def feature_archive(*, feature: Feature) -> Feature:
    if feature.archived_at is not None:
        raise NotFound(f"feature {feature.pk} not found")
    feature.archived_at = timezone.now()
    feature.save(update_fields=["archived_at", "updated_at"])
    return feature


def feature_list_qs(*, include_archived: bool = False) -> QuerySet[Feature]:
    qs = Feature.objects.select_related("meter")
    return qs if include_archived else qs.filter(archived_at__isnull=True)


def feature_group_filters(feature: Feature) -> dict[str, list[str]]:
    """`meterGroupByFilters` as the meter query wants them: key → allowed values."""
    return {k: [str(v)] for k, v in (feature.meter_group_by_filters or {}).items()}


@dataclass(frozen=True)
class UsageFilters:
    """How a feature narrows its meter: exact `group_filters` or FilterString `advanced_filters` (one is empty)."""

    group_filters: dict[str, list[str]]
    advanced_filters: dict[str, Any]


def feature_usage_filters(feature: Feature) -> UsageFilters:
    """As upstream: `advancedMeterGroupByFilters` when the feature has any, else the legacy `meterGroupByFilters`."""
    if feature.advanced_meter_group_by_filters:
        return UsageFilters(group_filters={}, advanced_filters=dict(feature.advanced_meter_group_by_filters))
    return UsageFilters(group_filters=feature_group_filters(feature), advanced_filters={})
