"""Features API (`/api/v1/features`)."""

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.features import feature_archive, feature_create, feature_get, feature_list_qs
from catalog.models import Feature
from openmeter_site.api.fields import JSONObjectField, MetadataField
from openmeter_site.api.pagination import order_queryset, paginate_or_list
from openmeter_site.api.params import get_bool, get_list
from openmeter_site.core.ids import KEY_RE
from openmeter_site.core.lengths import column_length
from openmeter_site.core.time import format_rfc3339

FEATURE_ORDER_BY = {"id": "id", "key": "key", "name": "name", "createdAt": "created_at", "updatedAt": "updated_at"}


class FeatureCreateSerializer(serializers.Serializer):
    key = serializers.RegexField(KEY_RE.pattern, max_length=column_length(Feature, "key"))
    name = serializers.CharField(min_length=1, max_length=column_length(Feature, "name"))
    metadata = MetadataField()
    meterSlug = serializers.CharField(required=False, allow_null=True, max_length=column_length(Feature, "meter_slug"))
    meterGroupByFilters = serializers.DictField(child=serializers.CharField(), required=False, allow_null=True)
    advancedMeterGroupByFilters = JSONObjectField(required=False, allow_null=True)
    unitCost = JSONObjectField(required=False, allow_null=True)


def feature_to_api(feature: Feature) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": feature.pk,
        "key": feature.key,
        "name": feature.name,
        "metadata": feature.metadata or {},
        "createdAt": format_rfc3339(feature.created_at),
        "updatedAt": format_rfc3339(feature.updated_at),
    }
    optional = {
        "meterSlug": feature.meter_slug,
        "meterGroupByFilters": feature.meter_group_by_filters,
        "advancedMeterGroupByFilters": feature.advanced_meter_group_by_filters,
        "unitCost": feature.unit_cost,
        "archivedAt": format_rfc3339(feature.archived_at),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


class FeatureListView(APIView):
    def get(self, request: Request) -> Response:
        q = request.query_params
        qs = feature_list_qs(meter_slugs=get_list(q, "meterSlug"), include_archived=get_bool(q, "includeArchived"))
        qs = order_queryset(q, qs, FEATURE_ORDER_BY, "createdAt")
        return Response(paginate_or_list(q, qs, feature_to_api))

    def post(self, request: Request) -> Response:
        body = FeatureCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        feature = feature_create(
            key=v["key"],
            name=v["name"],
            meter_slug=v.get("meterSlug"),
            meter_group_by_filters=v.get("meterGroupByFilters"),
            advanced_meter_group_by_filters=v.get("advancedMeterGroupByFilters"),
            metadata=v.get("metadata"),
            unit_cost=v.get("unitCost"),
        )
        return Response(feature_to_api(feature), status=201)


class FeatureDetailView(APIView):
    def get(self, request: Request, feature_id: str) -> Response:
        return Response(feature_to_api(feature_get(id_or_key=feature_id)))

    def delete(self, request: Request, feature_id: str) -> Response:
        feature_archive(feature=feature_get(id_or_key=feature_id))
        return Response(status=204)
