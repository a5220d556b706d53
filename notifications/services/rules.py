"""Notification rules: which events fire, to which channels, for which features."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.models import Feature
from notifications.models import EventType, NotificationChannel, NotificationRule, ThresholdType
from notifications.payloads import number_str
from openmeter_site.core.errors import InvalidInput, NotFound

MAX_THRESHOLDS = 10
FEATURE_SCOPED = (EventType.BALANCE_THRESHOLD, EventType.ENTITLEMENT_RESET)
DEPRECATED_THRESHOLD_TYPES: dict[str, str] = {
    ThresholdType.PERCENT: ThresholdType.USAGE_PERCENTAGE,
    ThresholdType.NUMBER: ThresholdType.USAGE_VALUE,
}


@dataclass(frozen=True)
class Threshold:
    type: str
    value: Decimal

    @property
    def kind(self) -> str:
        """The current name of a deprecated type: PERCENT is usage_percentage, NUMBER is usage_value."""
        return DEPRECATED_THRESHOLD_TYPES.get(self.type, self.type)

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "value": number_str(self.value)}


def rule_thresholds(rule: NotificationRule) -> list[Threshold]:
    return [Threshold(type=t["type"], value=Decimal(t["value"])) for t in rule.thresholds]


def rule_get(*, rule_id: str) -> NotificationRule:
    rule = NotificationRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise NotFound(f"notification rule {rule_id} not found")
    return rule


def _channels(channel_ids: Sequence[str]) -> list[NotificationChannel]:
    if not channel_ids:
        raise InvalidInput("channels: at least one channel is required")
    found = {c.id: c for c in NotificationChannel.objects.filter(pk__in=channel_ids, deleted_at__isnull=True)}
    missing = [c for c in channel_ids if c not in found]
    if missing:
        raise InvalidInput(f"channels: notification channel(s) not found: {', '.join(missing)}")
    return list(found.values())


def _features(event_type: str, refs: Sequence[str]) -> list[Feature]:
    if not refs:
        return []
    if event_type not in FEATURE_SCOPED:
        raise InvalidInput(f"features: not supported for rule type {event_type}")
    found = list(Feature.objects.filter(Q(pk__in=refs) | Q(key__in=refs, archived_at__isnull=True)))
    known = {f.id for f in found} | {f.key for f in found}
    missing = [r for r in refs if r not in known]
    if missing:
        raise InvalidInput(f"features: feature(s) not found: {', '.join(missing)}")
    return found


def validate_thresholds(event_type: str, thresholds: Sequence[Threshold]) -> list[dict[str, str]]:
    """The thresholds as stored; raises InvalidInput naming the bad one."""
    if event_type != EventType.BALANCE_THRESHOLD:
        if thresholds:
            raise InvalidInput(f"thresholds: not supported for rule type {event_type}")
        return []
    if not 1 <= len(thresholds) <= MAX_THRESHOLDS:
        raise InvalidInput(f"thresholds: between 1 and {MAX_THRESHOLDS} thresholds are required")
    seen: set[tuple[str, Decimal]] = set()
    for i, t in enumerate(thresholds):
        if t.kind == ThresholdType.BALANCE_VALUE:
            if t.value < 0:
                raise InvalidInput(f"thresholds[{i}].value: a balance threshold cannot be negative")
        elif t.value <= 0:
            raise InvalidInput(f"thresholds[{i}].value: must be greater than 0")
        if (t.kind, t.value) in seen:
            raise InvalidInput(f"thresholds[{i}]: duplicate threshold {t.kind} {number_str(t.value)}")
        seen.add((t.kind, t.value))
    return [t.to_json() for t in thresholds]


@transaction.atomic
def rule_create(
    *,
    type: str,
    name: str,
    channel_ids: Sequence[str],
    thresholds: Sequence[Threshold] = (),
    feature_refs: Sequence[str] = (),
    disabled: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> NotificationRule:
    if type not in EventType.values:
        raise InvalidInput(f"type: unknown notification rule type {type!r}")
    channels = _channels(channel_ids)
    features = _features(type, feature_refs)
    rule = NotificationRule.objects.create(
        type=type,
        name=name,
        disabled=disabled,
        thresholds=validate_thresholds(type, thresholds),
        metadata=dict(metadata) if metadata is not None else None,
    )
    rule.channels.set(channels)
    rule.features.set(features)
    return rule


@transaction.atomic
def rule_update(
    *,
    rule_id: str,
    type: str,
    name: str,
    channel_ids: Sequence[str],
    thresholds: Sequence[Threshold] = (),
    feature_refs: Sequence[str] = (),
    disabled: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> NotificationRule:
    """PUT semantics; the rule type is immutable."""
    rule = NotificationRule.objects.select_for_update().filter(pk=rule_id, deleted_at__isnull=True).first()
    if rule is None:
        raise NotFound(f"notification rule {rule_id} not found")
    if type != rule.type:
        raise InvalidInput(f"type: a rule's type cannot change (it is {rule.type})")
    channels = _channels(channel_ids)
    features = _features(type, feature_refs)
    rule.name = name
    rule.disabled = disabled
    rule.thresholds = validate_thresholds(type, thresholds)
    rule.metadata = dict(metadata) if metadata is not None else None
    rule.save()
    rule.channels.set(channels)
    rule.features.set(features)
    return rule


@transaction.atomic
def rule_set_disabled(*, rule_id: str, disabled: bool) -> NotificationRule:
    """Disables or enables a rule: the API's PUT of the rule as it is with only `disabled` changed, so the same
    checks apply (its channels still live, its features, thresholds and type)."""
    rule = NotificationRule.objects.select_for_update().filter(pk=rule_id, deleted_at__isnull=True).first()
    if rule is None:
        raise NotFound(f"notification rule {rule_id} not found")
    return rule_update(
        rule_id=rule.pk, type=rule.type, name=rule.name, channel_ids=[c.pk for c in rule.channels.all()],
        thresholds=rule_thresholds(rule), feature_refs=[f.pk for f in rule.features.all()], disabled=disabled,
        metadata=rule.metadata,
    )


def rule_delete(*, rule_id: str) -> None:
    moved = NotificationRule.objects.filter(pk=rule_id, deleted_at__isnull=True).update(
        deleted_at=timezone.now(), updated_at=timezone.now()
    )
    if not moved:
        raise NotFound(f"notification rule {rule_id} not found")
