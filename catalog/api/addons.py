"""Add-ons API (/api/v1/addons) and plan add-ons (/api/v1/plans/{planId}/addons)."""

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.api.filters import AddonFilter, PlanAddonFilter
from catalog.api.plans import ORDER_BY
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
from openmeter_site.api.fields import INT32_MAX, MetadataField
from openmeter_site.api.params import get_bool
from openmeter_site.api.routers import ListMixin, ResourceViewSet
from openmeter_site.core.ids import ULID_RE
from openmeter_site.core.lengths import column_length
from openmeter_site.core.time import format_rfc3339


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


class AddonViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/addons`: list, create, get, update (PUT), delete, and the actions `publish` and `archive`."""

    filterset_class = AddonFilter
    order_by, default_order_by = ORDER_BY, "created_at"
    lookup_url_kwarg = "addon_id"

    def get_queryset(self) -> QuerySet[Addon]:
        return addon_list_qs()

    def render(self, addon: Addon) -> dict[str, Any]:
        return addon_to_api(addon)

    def create(self, request: Request) -> Response:
        body = self.validated(AddonCreateIn)
        addon = addon_create(key=body.validated_data["key"], data=body.addon_input(body.validated_data["currency"]))
        return Response(addon_to_api(addon_get(id_or_key=addon.pk)), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, addon_id: str) -> Response:
        include_latest = get_bool(request.query_params, "includeLatest")
        return Response(addon_to_api(addon_get(id_or_key=addon_id, include_latest=include_latest)))

    def update(self, request: Request, addon_id: str) -> Response:
        current = addon_get(id_or_key=addon_id, include_latest=True)
        body = self.validated(AddonBodyIn)
        return Response(addon_to_api(addon_update(addon_id=current.pk, data=body.addon_input(current.currency))))

    def destroy(self, request: Request, addon_id: str) -> Response:
        addon_delete(addon_id=addon_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def publish(self, request: Request, addon_id: str) -> Response:
        addon = addon_publish(addon_id=addon_id)
        return Response(addon_to_api(addon_get(id_or_key=addon.pk)))

    @action(detail=True, methods=["post"])
    def archive(self, request: Request, addon_id: str) -> Response:
        addon = addon_archive(addon_id=addon_id)
        return Response(addon_to_api(addon_get(id_or_key=addon.pk)))


# --- plan add-ons ---------------------------------------------------------------------------------------------


class PlanAddonUpdateIn(serializers.Serializer):
    fromPlanPhase = key_field()
    maxQuantity = serializers.IntegerField(required=False, allow_null=True, max_value=INT32_MAX)
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


class PlanAddonViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/plans/{planId}/addons`: list, create, get, update (PUT), delete."""

    filterset_class = PlanAddonFilter
    order_by = {k: f"addon__{v}" for k, v in {"id": "id", "key": "key", "version": "version"}.items()}
    order_by |= {"created_at": "created_at", "updated_at": "updated_at"}
    default_order_by = "created_at"
    lookup_url_kwarg = "plan_addon_id"

    def get_queryset(self) -> QuerySet[PlanAddon]:
        return plan_addon_list_qs(plan_get(id_or_key=self.kwargs["plan_id"], include_latest=True))

    def render(self, link: PlanAddon) -> dict[str, Any]:
        return plan_addon_to_api(link)

    def create(self, request: Request, plan_id: str) -> Response:
        v = self.validated(PlanAddonCreateIn).validated_data
        link = plan_addon_create(
            plan_id=plan_id, addon_id=v["addonId"], from_plan_phase=v["fromPlanPhase"],
            max_quantity=v.get("maxQuantity"), metadata=v.get("metadata"),
        )
        return Response(plan_addon_to_api(link), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, plan_id: str, plan_addon_id: str) -> Response:
        return Response(plan_addon_to_api(plan_addon_get(plan_id=plan_id, plan_addon_id=plan_addon_id)))

    def update(self, request: Request, plan_id: str, plan_addon_id: str) -> Response:
        v = self.validated(PlanAddonUpdateIn).validated_data
        link = plan_addon_update(
            plan_id=plan_id, plan_addon_id=plan_addon_id, from_plan_phase=v["fromPlanPhase"],
            max_quantity=v.get("maxQuantity"), metadata=v.get("metadata"),
        )
        return Response(plan_addon_to_api(link))

    def destroy(self, request: Request, plan_id: str, plan_addon_id: str) -> Response:
        plan_addon_delete(plan_id=plan_id, plan_addon_id=plan_addon_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
