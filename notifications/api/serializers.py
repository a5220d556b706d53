"""Wire ↔ Python for notification channels, rules and events (In serializers validate, `*_to_api` render)."""

from typing import Any

import orjson
from rest_framework import serializers

from notifications.models import (
    ChannelType,
    EventType,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
    NotificationRule,
    ThresholdType,
)
from notifications.services.channels import SIGNING_SECRET_RE
from notifications.services.rules import Threshold, rule_thresholds
from openmeter_site.api.fields import MetadataField, NumericField
from openmeter_site.core.ids import ULID_RE
from openmeter_site.core.lengths import column_length
from openmeter_site.core.time import format_rfc3339


class ChannelCreateSerializer(serializers.Serializer):
    """NotificationChannelCreateRequest (create and PUT)."""

    type = serializers.ChoiceField(choices=ChannelType.values)
    name = serializers.CharField(min_length=1, max_length=column_length(NotificationChannel, "name"))
    disabled = serializers.BooleanField(required=False, default=False)
    metadata = MetadataField()
    url = serializers.URLField(max_length=column_length(NotificationChannel, "url"))
    customHeaders = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    signingSecret = serializers.RegexField(SIGNING_SECRET_RE.pattern, required=False)

    def service_kwargs(self) -> dict[str, Any]:
        d = self.validated_data
        return {
            "name": d["name"],
            "url": d["url"],
            "custom_headers": d.get("customHeaders"),
            "signing_secret": d.get("signingSecret"),
            "disabled": d["disabled"],
            "metadata": d.get("metadata"),
        }


class ThresholdSerializer(serializers.Serializer):
    value = NumericField()
    type = serializers.ChoiceField(choices=ThresholdType.values)


class RuleCreateSerializer(serializers.Serializer):
    """NotificationRuleCreateRequest: one shape for the four rule types; the service checks per-type fields."""

    type = serializers.ChoiceField(choices=EventType.values)
    name = serializers.CharField(min_length=1, max_length=column_length(NotificationRule, "name"))
    disabled = serializers.BooleanField(required=False, default=False)
    metadata = MetadataField()
    channels = serializers.ListField(child=serializers.RegexField(ULID_RE.pattern), min_length=1)
    thresholds = ThresholdSerializer(many=True, required=False)
    features = serializers.ListField(child=serializers.CharField(min_length=1, max_length=64), required=False, min_length=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == EventType.BALANCE_THRESHOLD and not attrs.get("thresholds"):
            raise serializers.ValidationError({"thresholds": "required for entitlements.balance.threshold rules"})
        return attrs

    def service_kwargs(self) -> dict[str, Any]:
        d = self.validated_data
        return {
            "type": d["type"],
            "name": d["name"],
            "channel_ids": d["channels"],
            "thresholds": [Threshold(type=t["type"], value=t["value"]) for t in d.get("thresholds") or []],
            "feature_refs": d.get("features") or [],
            "disabled": d["disabled"],
            "metadata": d.get("metadata"),
        }


class ResendSerializer(serializers.Serializer):
    channels = serializers.ListField(child=serializers.RegexField(ULID_RE.pattern), required=False)


def _timestamps(obj: Any) -> dict[str, Any]:
    out = {"createdAt": format_rfc3339(obj.created_at), "updatedAt": format_rfc3339(obj.updated_at)}
    if getattr(obj, "deleted_at", None) is not None:
        out["deletedAt"] = format_rfc3339(obj.deleted_at)
    return out


def channel_to_api(channel: NotificationChannel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "type": channel.type,
        "name": channel.name,
        "disabled": channel.disabled,
        "url": channel.url,
        "customHeaders": channel.custom_headers or {},
        "signingSecret": channel.signing_secret,
        "metadata": channel.metadata,
        "annotations": channel.annotations or {},
        **_timestamps(channel),
    }


def rule_to_api(rule: NotificationRule) -> dict[str, Any]:
    """Expects `channels` and `features` prefetched (see selectors.rule_list_qs)."""
    out: dict[str, Any] = {
        "id": rule.id,
        "type": rule.type,
        "name": rule.name,
        "disabled": rule.disabled,
        "channels": [{"id": c.id, "type": c.type} for c in rule.channels.all()],
        "metadata": rule.metadata,
        "annotations": rule.annotations or {},
        **_timestamps(rule),
    }
    if rule.type == EventType.BALANCE_THRESHOLD:
        out["thresholds"] = [{"value": t.value, "type": t.type} for t in rule_thresholds(rule)]
    features = [{"id": f.id, "key": f.key} for f in rule.features.all()]
    if features:
        out["features"] = features
    return out


def delivery_to_api(delivery: NotificationDelivery) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": delivery.state,
        "reason": delivery.reason,
        "updatedAt": format_rfc3339(delivery.updated_at),
        "channel": {"id": delivery.channel_id, "type": delivery.channel.type},
        "annotations": {},
        "attempts": [
            {
                "state": a.state,
                "timestamp": format_rfc3339(a.timestamp),
                "response": {
                    **({"statusCode": a.status_code} if a.status_code is not None else {}),
                    "body": a.response_body,
                    "durationMs": a.duration_ms,
                    "url": a.url,
                },
            }
            for a in delivery.attempts.all()
        ],
    }
    if delivery.next_attempt_at is not None:
        out["nextAttempt"] = format_rfc3339(delivery.next_attempt_at)
    return out


def event_to_api(event: NotificationEvent) -> dict[str, Any]:
    """Expects the rule, deliveries and attempts prefetched (see selectors.event_list_qs)."""
    return {
        "id": event.id,
        "type": event.type,
        "createdAt": format_rfc3339(event.created_at),
        "rule": rule_to_api(event.rule),
        "deliveryStatus": [delivery_to_api(d) for d in event.deliveries.all()],
        "payload": orjson.Fragment(event.payload_json),
        "annotations": event.annotations or {},
    }
