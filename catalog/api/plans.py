"""Plans API: /api/v1/plans (create, list, get, update, delete, publish, archive)."""

from typing import Any

from django.db.models import Q
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

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
from catalog.services.versioning import status_q
from openmeter_site.api.fields import MetadataField
from openmeter_site.api.pagination import order_queryset, paginate
from openmeter_site.api.params import get_bool, get_deep_object, get_list
from openmeter_site.core.errors import InvalidInput
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


def version_filters(request: Request, qs: Any, statuses: list[str]) -> Any:
    """The list filters plans and add-ons share: id[], key[], keyVersion[key]=v, status[], currency[]."""
    query = request.query_params
    if not get_bool(query, "includeDeleted"):
        qs = qs.filter(deleted_at__isnull=True)
    if ids := get_list(query, "id"):
        qs = qs.filter(id__in=ids)
    if keys := get_list(query, "key"):
        qs = qs.filter(key__in=keys)
    key_versions = Q()
    for raw_key in query:
        if raw_key.startswith("keyVersion["):
            key = raw_key[len("keyVersion[") : -1]
            versions = query.getlist(raw_key)
            if not all(v.isdigit() for v in versions):
                raise InvalidInput(f"keyVersion[{key}]: versions must be integers")
            key_versions |= Q(key=key, version__in=[int(v) for v in versions])
    if get_deep_object(query, "keyVersion"):
        qs = qs.filter(key_versions)
    if wanted := get_list(query, "status"):
        unknown = set(wanted) - set(statuses)
        if unknown:
            raise InvalidInput(f"status: must be one of {', '.join(statuses)}, got {', '.join(sorted(unknown))}")
        now = timezone.now()
        status_filter = Q()
        for s in wanted:
            status_filter |= status_q(s, now)
        qs = qs.filter(status_filter)
    if currencies := get_list(query, "currency"):
        qs = qs.filter(currency__in=currencies)
    return order_queryset(query, qs, ORDER_BY, "created_at")


class PlanListView(APIView):
    def get(self, request: Request) -> Response:
        qs = version_filters(request, plan_list_qs(), [s.value for s in CatalogStatus])
        return Response(paginate(request.query_params, qs, plan_to_api))

    def post(self, request: Request) -> Response:
        body = PlanCreateIn(data=request.data)
        body.is_valid(raise_exception=True)
        plan = plan_create(key=body.validated_data["key"], data=body.plan_input(body.validated_data["currency"]))
        return Response(plan_to_api(plan_get(id_or_key=plan.pk)), status=status.HTTP_201_CREATED)


class PlanDetailView(APIView):
    def get(self, request: Request, plan_id: str) -> Response:
        include_latest = get_bool(request.query_params, "includeLatest")
        return Response(plan_to_api(plan_get(id_or_key=plan_id, include_latest=include_latest)))

    def put(self, request: Request, plan_id: str) -> Response:
        current = plan_get(id_or_key=plan_id, include_latest=True)
        body = PlanBodyIn(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(plan_to_api(plan_update(plan_id=current.pk, data=body.plan_input(current.currency))))

    def delete(self, request: Request, plan_id: str) -> Response:
        plan_delete(plan_id=plan_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PlanPublishView(APIView):
    def post(self, request: Request, plan_id: str) -> Response:
        plan = plan_publish(plan_id=plan_id)
        return Response(plan_to_api(plan_get(id_or_key=plan.pk)))


class PlanNextView(APIView):
    def post(self, request: Request, plan_id: str) -> Response:
        plan = plan_next(plan_id_or_key=plan_id)
        return Response(plan_to_api(plan_get(id_or_key=plan.pk)), status=status.HTTP_201_CREATED)


class PlanArchiveView(APIView):
    def post(self, request: Request, plan_id: str) -> Response:
        plan = plan_archive(plan_id=plan_id)
        return Response(plan_to_api(plan_get(id_or_key=plan.pk)))
