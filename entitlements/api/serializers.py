"""Request bodies for entitlements, grants and resets (V1 and V2 differ only in grant defaults and extras)."""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from catalog.features import feature_get
from catalog.models import Feature
from entitlements.engine import parse_interval
from entitlements.models import Entitlement
from entitlements.services import EXPIRATION_DURATIONS, GrantInput, UsagePeriodInput
from openmeter_site.api.fields import JSONObjectField, MetadataField, NumericField, RFC3339Field
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.lengths import column_length
from openmeter_site.core.time import parse_rfc3339

MEASURE_PRESETS = ("CURRENT_PERIOD_START", "NOW")
ZERO = Decimal(0)


class IntervalField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        try:
            parse_interval(text)
        except InvalidInput as exc:
            raise serializers.ValidationError(exc.detail) from exc
        return text


class RecurringPeriodSerializer(serializers.Serializer):
    interval = IntervalField()
    anchor = RFC3339Field(required=False, allow_null=True)

    def to_input(self, data: dict[str, Any]) -> UsagePeriodInput:
        return UsagePeriodInput(interval=data["interval"], anchor=data.get("anchor"))


class ExpirationSerializer(serializers.Serializer):
    duration = serializers.ChoiceField(choices=list(EXPIRATION_DURATIONS))
    count = serializers.IntegerField(min_value=1, max_value=1000)


class MeasureUsageFromField(serializers.Field):
    def to_internal_value(self, data: Any) -> Any:
        if data in MEASURE_PRESETS:
            return data
        try:
            return parse_rfc3339(data, "measureUsageFrom")
        except InvalidInput as exc:
            raise serializers.ValidationError("must be CURRENT_PERIOD_START, NOW or an RFC 3339 date-time") from exc


class GrantCreateSerializer(serializers.Serializer):
    """EntitlementGrantCreateInput (V1: expiration required, maxRolloverAmount defaults to 0)."""

    v2 = False
    amount = NumericField(min_value=ZERO)
    priority = serializers.IntegerField(min_value=1, max_value=255, required=False, default=1)
    effectiveAt = RFC3339Field()
    expiration = ExpirationSerializer()
    minRolloverAmount = NumericField(min_value=ZERO, required=False)
    maxRolloverAmount = NumericField(min_value=ZERO, required=False)
    recurrence = RecurringPeriodSerializer(required=False, allow_null=True)
    metadata = MetadataField()

    def to_input(self) -> GrantInput:
        return grant_input(self.validated_data, v2=self.v2)


class GrantCreateV2Serializer(GrantCreateSerializer):
    """EntitlementGrantCreateInputV2 (expiration optional, maxRolloverAmount defaults to amount)."""

    v2 = True
    expiration = ExpirationSerializer(required=False, allow_null=True)
    annotations = JSONObjectField(required=False, allow_null=True)


def grant_input(v: dict[str, Any], *, v2: bool) -> GrantInput:
    expiration = v.get("expiration") or {}
    recurrence = v.get("recurrence")
    max_rollover = v.get("maxRolloverAmount")
    if max_rollover is None and not v2:
        max_rollover = ZERO
    return GrantInput(
        amount=v["amount"],
        effective_at=v["effectiveAt"],
        priority=v.get("priority") or 1,
        expiration_duration=expiration.get("duration"),
        expiration_count=expiration.get("count"),
        min_rollover_amount=v.get("minRolloverAmount") or ZERO,
        max_rollover_amount=max_rollover,
        recurrence=UsagePeriodInput(recurrence["interval"], recurrence.get("anchor")) if recurrence else None,
        metadata=v.get("metadata") or {},
        annotations=v.get("annotations") or {},
    )


class IssueSerializer(serializers.Serializer):
    amount = NumericField(min_value=ZERO)
    priority = serializers.IntegerField(min_value=1, max_value=255, required=False, default=1)


class EntitlementCreateSerializer(serializers.Serializer):
    """EntitlementCreateInputs (V1) / EntitlementV2CreateInputs: one body, checked per `type` in the service."""

    v2 = False
    type = serializers.ChoiceField(choices=["metered", "static", "boolean"])
    featureKey = serializers.CharField(required=False, max_length=column_length(Entitlement, "feature_key"))
    featureId = serializers.CharField(required=False, max_length=26)
    metadata = MetadataField()
    usagePeriod = RecurringPeriodSerializer(required=False, allow_null=True)
    isSoftLimit = serializers.BooleanField(required=False, default=False)
    isUnlimited = serializers.BooleanField(required=False, default=False)
    measureUsageFrom = MeasureUsageFromField(required=False, allow_null=True)
    preserveOverageAtReset = serializers.BooleanField(required=False, default=False)
    issueAfterReset = NumericField(min_value=ZERO, required=False, allow_null=True)
    issueAfterResetPriority = serializers.IntegerField(min_value=1, max_value=255, required=False, allow_null=True)
    config = serializers.CharField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("featureKey") and not attrs.get("featureId"):
            raise serializers.ValidationError({"featureKey": "featureKey or featureId is required"})
        return attrs

    def feature(self) -> Feature:
        v = self.validated_data
        feature = feature_get(id_or_key=v.get("featureId") or v["featureKey"])
        if v.get("featureKey") and feature.key != v["featureKey"]:
            raise InvalidInput("featureKey: does not match featureId")
        return feature

    def create_kwargs(self) -> dict[str, Any]:
        v = self.validated_data
        issue_amount, issue_priority = v.get("issueAfterReset"), v.get("issueAfterResetPriority")
        if v.get("issue"):
            issue_amount, issue_priority = v["issue"]["amount"], v["issue"].get("priority", 1)
        period = v.get("usagePeriod")
        return {
            "type": v["type"],
            "usage_period": UsagePeriodInput(period["interval"], period.get("anchor")) if period else None,
            "measure_usage_from": v.get("measureUsageFrom"),
            "is_soft_limit": v.get("isSoftLimit", False),
            "preserve_overage_at_reset": v.get("preserveOverageAtReset", False),
            "issue_after_reset": issue_amount,
            "issue_after_reset_priority": issue_priority,
            "config": v.get("config"),
            "metadata": v.get("metadata") or {},
            "grants": [grant_input(g, v2=True) for g in v.get("grants") or []],
        }


class EntitlementCreateV2Serializer(EntitlementCreateSerializer):
    v2 = True
    issue = IssueSerializer(required=False, allow_null=True)
    grants = GrantCreateV2Serializer(many=True, required=False)


class ResetSerializer(serializers.Serializer):
    effectiveAt = RFC3339Field(required=False, allow_null=True)
    retainAnchor = serializers.BooleanField(required=False, default=False)
    preserveOverage = serializers.BooleanField(required=False, allow_null=True, default=None)
