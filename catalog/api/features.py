"""Features API (`/api/v1/features`)."""

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.api.filters import FeatureFilter
from catalog.features import feature_archive, feature_create, feature_get, feature_list_qs
from catalog.models import Feature
from openmeter_site.api.fields import JSONObjectField, MetadataField
from openmeter_site.api.pagination import PageOrOffsetPagination
from openmeter_site.api.routers import ListMixin, ResourceViewSet
from openmeter_site.core.ids import KEY_RE
from openmeter_site.core.lengths import column_length
from openmeter_site.core.time import format_rfc3339


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


class FeatureViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/features`: list (a plain array unless `page`/`pageSize` is sent), create, get, delete (archive)."""

    filterset_class = FeatureFilter
    pagination_class = PageOrOffsetPagination
    order_by = {"id": "id", "key": "key", "name": "name", "createdAt": "created_at", "updatedAt": "updated_at"}
    default_order_by = "createdAt"
    lookup_url_kwarg = "feature_id"

    def get_queryset(self) -> QuerySet[Feature]:
        return feature_list_qs(include_archived=True)

    def render(self, feature: Feature) -> dict[str, Any]:
        return feature_to_api(feature)

    def create(self, request: Request) -> Response:
        v = self.validated(FeatureCreateSerializer).validated_data
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

    def retrieve(self, request: Request, feature_id: str) -> Response:
        return Response(feature_to_api(feature_get(id_or_key=feature_id)))

    def destroy(self, request: Request, feature_id: str) -> Response:
        feature_archive(feature=feature_get(id_or_key=feature_id))
        return Response(status=204)
