"""Plans API: /api/v1/plans (create, list, get, update, delete, publish, archive, next)."""

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.api.filters import PlanFilter
from catalog.api.ratecards import DurationField, RateCardField, key_field, omit_none, rate_card_to_api
from catalog.models import CatalogStatus, Plan, PlanPhase
from catalog.services.plans import (
    PhaseInput,
    PlanInput,
    plan_archive,
    plan_create,
    plan_delete,
    plan_get,
    plan_list_qs,
    plan_next,
    plan_publish,
    plan_update,
    plan_validation_errors,
)
from openmeter_site.api.fields import MetadataField
from openmeter_site.api.params import get_bool
from openmeter_site.api.routers import ListMixin, ResourceViewSet
from openmeter_site.core.lengths import column_length
from openmeter_site.core.time import format_rfc3339

ORDER_BY = {"id": "id", "key": "key", "version": "version", "created_at": "created_at", "updated_at": "updated_at"}


class PhaseIn(serializers.Serializer):
    key = key_field()
    name = serializers.CharField(max_length=column_length(PlanPhase, "name"))
    description = serializers.CharField(max_length=column_length(PlanPhase, "description"), required=False,
                                        allow_null=True, allow_blank=True)
    metadata = MetadataField()
    duration = DurationField(allow_null=True)
    rateCards = serializers.ListField(child=RateCardField())


class ProRatingIn(serializers.Serializer):
    enabled = serializers.BooleanField(default=True)
    mode = serializers.ChoiceField(["prorate_prices"], default="prorate_prices")


class AlignmentIn(serializers.Serializer):
    billablesMustAlign = serializers.BooleanField(default=True)


class PlanBodyIn(serializers.Serializer):
    """PlanReplaceUpdate; PlanCreate and CustomPlanInput add key/currency."""

    name = serializers.CharField(max_length=column_length(Plan, "name"))
    description = serializers.CharField(max_length=column_length(Plan, "description"), required=False,
                                        allow_null=True, allow_blank=True)
    metadata = MetadataField()
    alignment = AlignmentIn(required=False)
    billingCadence = DurationField()
    proRatingConfig = ProRatingIn(required=False)
    settlementMode = serializers.ChoiceField(["credit_then_invoice", "credit_only"], default="credit_then_invoice")
    phases = PhaseIn(many=True, allow_empty=False)

    def plan_input(self, currency: str) -> PlanInput:
        v = self.validated_data
        pro_rating = v.get("proRatingConfig") or {"enabled": True, "mode": "prorate_prices"}
        return PlanInput(
            name=v["name"],
            description=v.get("description"),
            metadata=v.get("metadata"),
            currency=currency,
            billing_cadence=v["billingCadence"],
            pro_rating_enabled=pro_rating["enabled"],
            pro_rating_mode=pro_rating["mode"],
            billables_must_align=(v.get("alignment") or {}).get("billablesMustAlign", True),
            settlement_mode=v["settlementMode"],
            phases=[
                PhaseInput(
                    key=p["key"],
                    name=p["name"],
                    description=p.get("description"),
                    metadata=p.get("metadata"),
                    duration=p["duration"],
                    rate_cards=p["rateCards"],
                )
                for p in v["phases"]
            ],
        )


class CustomPlanIn(PlanBodyIn):
    currency = serializers.RegexField(r"^[A-Z]{3}$", default="USD")


class PlanCreateIn(CustomPlanIn):
    key = key_field()


def phase_to_api(phase: Any) -> dict[str, Any]:
    return omit_none({
        "key": phase.key,
        "name": phase.name,
        "description": phase.description,
        "metadata": phase.metadata,
        "duration": phase.duration,
        "rateCards": [rate_card_to_api(c) for c in phase.rate_cards.all()],
    }, keep=("duration",))


def plan_to_api(plan: Plan) -> dict[str, Any]:
    errors = plan_validation_errors(plan) if plan.status == CatalogStatus.DRAFT else []
    return omit_none({
        "id": plan.id,
        "key": plan.key,
        "version": plan.version,
        "name": plan.name,
        "description": plan.description,
        "metadata": plan.metadata,
        "currency": plan.currency,
        "billingCadence": plan.billing_cadence,
        "proRatingConfig": {"enabled": plan.pro_rating_enabled, "mode": plan.pro_rating_mode},
        "alignment": {"billablesMustAlign": plan.billables_must_align},
        "settlementMode": plan.settlement_mode,
        "effectiveFrom": format_rfc3339(plan.effective_from),
        "effectiveTo": format_rfc3339(plan.effective_to),
        "status": plan.status,
        "phases": [phase_to_api(p) for p in plan.phases.all()],
        "validationErrors": errors or None,
        "createdAt": format_rfc3339(plan.created_at),
        "updatedAt": format_rfc3339(plan.updated_at),
        "deletedAt": format_rfc3339(plan.deleted_at),
    }, keep=("validationErrors",))


class PlanViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/plans`: list, create, get, update (PUT), delete, and the actions `publish`, `archive` and `next`
    (a new draft version)."""

    filterset_class = PlanFilter
    order_by, default_order_by = ORDER_BY, "created_at"
    lookup_url_kwarg = "plan_id"

    def get_queryset(self) -> QuerySet[Plan]:
        return plan_list_qs()

    def render(self, plan: Plan) -> dict[str, Any]:
        return plan_to_api(plan)

    def create(self, request: Request) -> Response:
        body = self.validated(PlanCreateIn)
        plan = plan_create(key=body.validated_data["key"], data=body.plan_input(body.validated_data["currency"]))
        return Response(plan_to_api(plan_get(id_or_key=plan.pk)), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, plan_id: str) -> Response:
        include_latest = get_bool(request.query_params, "includeLatest")
        return Response(plan_to_api(plan_get(id_or_key=plan_id, include_latest=include_latest)))

    def update(self, request: Request, plan_id: str) -> Response:
        current = plan_get(id_or_key=plan_id, include_latest=True)
        body = self.validated(PlanBodyIn)
        return Response(plan_to_api(plan_update(plan_id=current.pk, data=body.plan_input(current.currency))))

    def destroy(self, request: Request, plan_id: str) -> Response:
        plan_delete(plan_id=plan_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def publish(self, request: Request, plan_id: str) -> Response:
        plan = plan_publish(plan_id=plan_id)
        return Response(plan_to_api(plan_get(id_or_key=plan.pk)))

    @action(detail=True, methods=["post"])
    def archive(self, request: Request, plan_id: str) -> Response:
        plan = plan_archive(plan_id=plan_id)
        return Response(plan_to_api(plan_get(id_or_key=plan.pk)))

    @action(detail=True, methods=["post"])
    def next(self, request: Request, plan_id: str) -> Response:
        plan = plan_next(plan_id_or_key=plan_id)
        return Response(plan_to_api(plan_get(id_or_key=plan.pk)), status=status.HTTP_201_CREATED)
