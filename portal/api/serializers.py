from typing import Any

from django.utils import timezone
from rest_framework import serializers

from openmeter_site.api.fields import RFC3339Field
from openmeter_site.core.ids import KEY_RE
from openmeter_site.core.lengths import column_length
from openmeter_site.core.time import format_rfc3339
from portal.models import PortalToken


class PortalTokenCreateSerializer(serializers.Serializer):
    subject = serializers.CharField(min_length=1, max_length=column_length(PortalToken, "subject"))
    allowedMeterSlugs = serializers.ListField(
        child=serializers.RegexField(KEY_RE.pattern, max_length=64), required=False, allow_null=True
    )
    expiresAt = RFC3339Field(required=False, allow_null=True)


class PortalTokenInvalidateSerializer(serializers.Serializer):
    id = serializers.CharField(required=False, allow_blank=False)
    subject = serializers.CharField(required=False, allow_blank=False)


def portal_token_to_api(token: PortalToken, raw: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": token.id,
        "subject": token.subject,
        "expiresAt": format_rfc3339(token.expires_at),
        "expired": token.is_expired(timezone.now()),
        "createdAt": format_rfc3339(token.created_at),
    }
    if token.allowed_meter_slugs:
        out["allowedMeterSlugs"] = token.allowed_meter_slugs
    if raw is not None:
        out["token"] = raw
    return out
