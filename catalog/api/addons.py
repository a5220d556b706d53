"""Add-ons API (/api/v1/addons) and plan add-ons (/api/v1/plans/{planId}/addons)."""

from typing import Any

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.api.plans import version_filters
from catalog.api.ratecards import RateCardField, key_field, omit_none, rate_card_to_api
from catalog.models import Addon, CatalogStatus, PlanAddon
from catalog.services.addons import (
    AddonInput,
    addon_archive,
    addon_create,
    addon_delete,
    addon_get,
    addon_list_qs,
    addon_publish,
    addon_update,
    addon_validation_errors,
    plan_addon_create,
    plan_addon_delete,
    plan_addon_get,
    plan_addon_list_qs,
    plan_addon_update,
)
from catalog.services.plans import plan_get
from openmeter_site.api.fields import MetadataField
from openmeter_site.api.pagination import order_queryset, paginate
from openmeter_site.api.params import get_bool, get_list
from openmeter_site.core.ids import ULID_RE
from openmeter_site.core.lengths import column_length
from openmeter_site.core.time import format_rfc3339

ADDON_STATUSES = [CatalogStatus.DRAFT.value, CatalogStatus.ACTIVE.value, CatalogStatus.ARCHIVED.value]


class AddonBodyIn(serializers.Serializer):
    """AddonReplaceUpdate; AddonCreate adds key and currency."""

    name = serializers.CharField(max_length=column_length(Addon, "name"))
    description = serializers.CharField(max_length=column_length(Addon, "description"), required=False, allow_null=True,
                                        allow_blank=True)
    metadata = MetadataField()
    instanceType = serializers.ChoiceField(["single", "multiple"])
    rateCards = serializers.ListField(child=RateCardField())

    def addon_input(self, currency: str) -> AddonInput:
        v = self.validated_data
        return AddonInput(
            name=v["name"],
            description=v.get("description"),
            metadata=v.get("metadata"),
            currency=currency,
            instance_type=v["instanceType"],
            rate_cards=v["rateCards"],
        )


class AddonCreateIn(AddonBodyIn):
    key = key_field()
    currency = serializers.RegexField(r"^[A-Z]{3}$", default="USD")


def addon_to_api(addon: Addon) -> dict[str, Any]:
    status_ = addon.status
    # AddonStatus has no "scheduled": a version published for later is reported as draft until it starts.
    wire_status = CatalogStatus.DRAFT if status_ == CatalogStatus.SCHEDULED else status_
    errors = addon_validation_errors(addon) if status_ == CatalogStatus.DRAFT else []
    return omit_none({
        "id": addon.id,
        "key": addon.key,
        "version": addon.version,
        "name": addon.name,
        "description": addon.description,
        "metadata": addon.metadata,
        "annotations": addon.annotations or {},
        "instanceType": addon.instance_type,
        "currency": addon.currency,
        "effectiveFrom": format_rfc3339(addon.effective_from),
        "effectiveTo": format_rfc3339(addon.effective_to),
        "status": wire_status,
        "rateCards": [rate_card_to_api(c) for c in addon.rate_cards.all()],
        "validationErrors": errors or None,
        "createdAt": format_rfc3339(addon.created_at),
        "updatedAt": format_rfc3339(addon.updated_at),
        "deletedAt": format_rfc3339(addon.deleted_at),
    }, keep=("validationErrors",))


class AddonListView(APIView):
    def get(self, request: Request) -> Response:
        qs = version_filters(request, addon_list_qs(), ADDON_STATUSES)
        return Response(paginate(request.query_params, qs, addon_to_api))

    def post(self, request: Request) -> Response:
        body = AddonCreateIn(data=request.data)
        body.is_valid(raise_exception=True)
        addon = addon_create(key=body.validated_data["key"], data=body.addon_input(body.validated_data["currency"]))
        return Response(addon_to_api(addon_get(id_or_key=addon.pk)), status=status.HTTP_201_CREATED)


class AddonDetailView(APIView):
    def get(self, request: Request, addon_id: str) -> Response:
        include_latest = get_bool(request.query_params, "includeLatest")
        return Response(addon_to_api(addon_get(id_or_key=addon_id, include_latest=include_latest)))

    def put(self, request: Request, addon_id: str) -> Response:
        current = addon_get(id_or_key=addon_id, include_latest=True)
        body = AddonBodyIn(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(addon_to_api(addon_update(addon_id=current.pk, data=body.addon_input(current.currency))))

    def delete(self, request: Request, addon_id: str) -> Response:
        addon_delete(addon_id=addon_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AddonPublishView(APIView):
    def post(self, request: Request, addon_id: str) -> Response:
        addon = addon_publish(addon_id=addon_id)
        return Response(addon_to_api(addon_get(id_or_key=addon.pk)))


class AddonArchiveView(APIView):
    def post(self, request: Request, addon_id: str) -> Response:
        addon = addon_archive(addon_id=addon_id)
        return Response(addon_to_api(addon_get(id_or_key=addon.pk)))


# --- plan add-ons ---------------------------------------------------------------------------------------------


class PlanAddonUpdateIn(serializers.Serializer):
    fromPlanPhase = key_field()
    maxQuantity = serializers.IntegerField(required=False, allow_null=True)
    metadata = MetadataField()


class PlanAddonCreateIn(PlanAddonUpdateIn):
    addonId = serializers.RegexField(ULID_RE)


def plan_addon_to_api(link: PlanAddon) -> dict[str, Any]:
    return omit_none({
        "id": link.id,
        "addon": addon_to_api(link.addon),
        "fromPlanPhase": link.from_plan_phase,
        "maxQuantity": link.max_quantity,
        "metadata": link.metadata,
        "annotations": link.annotations or {},
        "validationErrors": None,
        "createdAt": format_rfc3339(link.created_at),
        "updatedAt": format_rfc3339(link.updated_at),
        "deletedAt": format_rfc3339(link.deleted_at),
    }, keep=("validationErrors",))


class PlanAddonListView(APIView):
    def get(self, request: Request, plan_id: str) -> Response:
        query = request.query_params
        qs = plan_addon_list_qs(plan_get(id_or_key=plan_id, include_latest=True))
        if not get_bool(query, "includeDeleted"):
            qs = qs.filter(deleted_at__isnull=True)
        if ids := get_list(query, "id"):
            qs = qs.filter(addon_id__in=ids)
        if keys := get_list(query, "key"):
            qs = qs.filter(addon__key__in=keys)
        order_by = {k: f"addon__{v}" for k, v in {"id": "id", "key": "key", "version": "version"}.items()}
        order_by |= {"created_at": "created_at", "updated_at": "updated_at"}
        return Response(paginate(query, order_queryset(query, qs, order_by, "created_at"), plan_addon_to_api))

    def post(self, request: Request, plan_id: str) -> Response:
        body = PlanAddonCreateIn(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        link = plan_addon_create(
            plan_id=plan_id, addon_id=v["addonId"], from_plan_phase=v["fromPlanPhase"],
            max_quantity=v.get("maxQuantity"), metadata=v.get("metadata"),
        )
        return Response(plan_addon_to_api(link), status=status.HTTP_201_CREATED)


class PlanAddonDetailView(APIView):
    def get(self, request: Request, plan_id: str, plan_addon_id: str) -> Response:
        return Response(plan_addon_to_api(plan_addon_get(plan_id=plan_id, plan_addon_id=plan_addon_id)))

    def put(self, request: Request, plan_id: str, plan_addon_id: str) -> Response:
        body = PlanAddonUpdateIn(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        link = plan_addon_update(
            plan_id=plan_id, plan_addon_id=plan_addon_id, from_plan_phase=v["fromPlanPhase"],
            max_quantity=v.get("maxQuantity"), metadata=v.get("metadata"),
        )
        return Response(plan_addon_to_api(link))

    def delete(self, request: Request, plan_id: str, plan_addon_id: str) -> Response:
        plan_addon_delete(plan_id=plan_id, plan_addon_id=plan_addon_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
