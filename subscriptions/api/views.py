"""Subscriptions API: /api/v1/subscriptions..., their add-ons, and GET /api/v1/customers/{id}/subscriptions."""

import datetime as dt
from functools import cached_property
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.api.plans import CustomPlanIn
from catalog.api.ratecards import DiscountsIn, DurationField, RateCardField, key_field
from customers.models import Customer
from openmeter_site.api.fields import INT32_MAX, MetadataField, RFC3339Field
from openmeter_site.api.params import get_datetime
from openmeter_site.api.routers import ListMixin, ResourceViewSet
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.ids import ULID_RE
from openmeter_site.core.lengths import column_length
from openmeter_site.core.time import parse_rfc3339
from subscriptions.api.filters import CustomerSubscriptionFilter
from subscriptions.api.render import subscription_addon_to_api, subscription_expanded_to_api, subscription_to_api
from subscriptions.models import Subscription, SubscriptionAddon, SubscriptionPhase
from subscriptions.selectors import customer_subscriptions_qs
from subscriptions.services import edit
from subscriptions.services.addons import (
    subscription_addon_create,
    subscription_addon_get,
    subscription_addon_list_qs,
    subscription_addon_update,
)
from subscriptions.services.lifecycle import (
    SubscriptionOptions,
    customer_resolve,
    subscription_cancel,
    subscription_change,
    subscription_create,
    subscription_delete,
    subscription_get,
    subscription_migrate,
    subscription_restore,
    subscription_unschedule_cancelation,
)


class TimingField(serializers.Field):
    """`SubscriptionTiming`: "immediate" | "next_billing_cycle" | an RFC 3339 date-time."""

    def to_internal_value(self, data: Any) -> str | dt.datetime:
        if data in ("immediate", "next_billing_cycle"):
            return data
        try:
            return parse_rfc3339(data, "timing")
        except InvalidInput as exc:
            raise serializers.ValidationError("must be immediate, next_billing_cycle or an RFC 3339 date-time") from exc

    def to_representation(self, value: Any) -> Any:
        return value


class PlanRefIn(serializers.Serializer):
    key = key_field()
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=INT32_MAX)


class AlignmentIn(serializers.Serializer):
    billablesMustAlign = serializers.BooleanField(required=False)


class _SubscribeIn(serializers.Serializer):
    """The fields PlanSubscriptionCreate/Change and CustomSubscriptionCreate/Change share."""

    plan = PlanRefIn(required=False)
    customPlan = CustomPlanIn(required=False)
    timing = TimingField(required=False)
    billingAnchor = RFC3339Field(required=False, allow_null=True)
    startingPhase = serializers.CharField(required=False, allow_null=True, min_length=1)
    name = serializers.CharField(required=False, allow_null=True, max_length=column_length(Subscription, "name"))
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                        max_length=column_length(Subscription, "description"))
    metadata = MetadataField()
    alignment = AlignmentIn(required=False)
    settlementMode = serializers.ChoiceField(["credit_then_invoice", "credit_only"], required=False)
    costBasisMode = serializers.ChoiceField(["dynamic", "pinned"], default="dynamic")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("plan" in attrs) == ("customPlan" in attrs):
            raise serializers.ValidationError({"plan": "give exactly one of plan or customPlan"})
        return attrs

    def target(self) -> dict[str, Any]:
        v = self.validated_data
        custom = None
        if "customPlan" in v:
            custom_plan = CustomPlanIn(data=self.initial_data["customPlan"])
            custom_plan.is_valid(raise_exception=True)
            custom = custom_plan.plan_input(custom_plan.validated_data["currency"])
        plan = v.get("plan") or {}
        return {"plan_key": plan.get("key"), "plan_version": plan.get("version"), "custom_plan": custom}

    def options(self) -> SubscriptionOptions:
        v = self.validated_data
        return SubscriptionOptions(
            name=v.get("name"),
            description=v.get("description"),
            metadata=v.get("metadata"),
            starting_phase=v.get("startingPhase"),
            billing_anchor=v.get("billingAnchor"),
            settlement_mode=v.get("settlementMode"),
            billables_must_align=(v.get("alignment") or {}).get("billablesMustAlign"),
            cost_basis_mode=v["costBasisMode"],
        )


class SubscriptionCreateIn(_SubscribeIn):
    customerId = serializers.RegexField(ULID_RE, required=False)
    customerKey = serializers.CharField(required=False, min_length=1, max_length=column_length(Customer, "key"))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if not attrs.get("customerId") and not attrs.get("customerKey"):
            raise serializers.ValidationError({"customerId": "customerId or customerKey is required"})
        return attrs


class SubscriptionChangeIn(_SubscribeIn):
    timing = TimingField()


def _now(request: Request) -> dt.datetime:
    return get_datetime(request.query_params, "at") or timezone.now()


class CancelIn(serializers.Serializer):
    timing = TimingField(required=False)


class MigrateIn(serializers.Serializer):
    timing = TimingField(default="immediate")
    targetVersion = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=INT32_MAX)
    startingPhase = serializers.CharField(required=False, allow_null=True, min_length=1)
    billingAnchor = RFC3339Field(required=False, allow_null=True)


def _change_response(current: Subscription, new: Subscription) -> Response:
    now = timezone.now()
    return Response({"current": subscription_to_api(current, now), "next": subscription_expanded_to_api(new, now)})


class SubscriptionViewSet(ResourceViewSet):
    """`/api/v1/subscriptions`: create, get, edit (PATCH), delete, and the actions `cancel`,
    `unschedule-cancelation`, `restore`, `change` and `migrate`."""

    lookup_url_kwarg = "subscription_id"

    def create(self, request: Request) -> Response:
        body = self.validated(SubscriptionCreateIn)
        v = body.validated_data
        subscription = subscription_create(
            customer=v.get("customerId") or v["customerKey"], timing=v.get("timing"), options=body.options(),
            **body.target(),
        )
        return Response(subscription_to_api(subscription, timezone.now()), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, subscription_id: str) -> Response:
        return Response(subscription_expanded_to_api(subscription_get(subscription_id=subscription_id), _now(request)))

    def partial_update(self, request: Request, subscription_id: str) -> Response:
        body = self.validated(SubscriptionEditIn)
        subscription = edit.subscription_edit(
            subscription_id=subscription_id, customizations=body.validated_data["customizations"],
            timing=body.validated_data.get("timing"),
        )
        return Response(subscription_to_api(subscription, timezone.now()))

    def destroy(self, request: Request, subscription_id: str) -> Response:
        subscription_delete(subscription_id=subscription_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, subscription_id: str) -> Response:
        body = self.validated(CancelIn, request.data or {})
        subscription = subscription_cancel(subscription_id=subscription_id, timing=body.validated_data.get("timing"))
        return Response(subscription_to_api(subscription, timezone.now()))

    @action(detail=True, methods=["post"], url_path="unschedule-cancelation")
    def unschedule_cancelation(self, request: Request, subscription_id: str) -> Response:
        subscription = subscription_unschedule_cancelation(subscription_id=subscription_id)
        return Response(subscription_to_api(subscription, timezone.now()))

    @action(detail=True, methods=["post"])
    def restore(self, request: Request, subscription_id: str) -> Response:
        """Deprecated: scheduled successors are deleted and this subscription continues."""
        subscription = subscription_restore(subscription_id=subscription_id)
        return Response(subscription_to_api(subscription, timezone.now()))

    @action(detail=True, methods=["post"])
    def change(self, request: Request, subscription_id: str) -> Response:
        body = self.validated(SubscriptionChangeIn)
        current, new = subscription_change(
            subscription_id=subscription_id, timing=body.validated_data["timing"], options=body.options(),
            **body.target(),
        )
        return _change_response(current, new)

    @action(detail=True, methods=["post"])
    def migrate(self, request: Request, subscription_id: str) -> Response:
        v = self.validated(MigrateIn, request.data or {}).validated_data
        current, new = subscription_migrate(
            subscription_id=subscription_id, target_version=v.get("targetVersion"), timing=v["timing"],
            starting_phase=v.get("startingPhase"), billing_anchor=v.get("billingAnchor"),
        )
        return _change_response(current, new)


# --- edit operations ------------------------------------------------------------------------------------------


class PhaseCreateIn(serializers.Serializer):
    startAfter = DurationField(allow_null=True)
    duration = DurationField(required=False, allow_null=True)
    discounts = serializers.DictField(required=False, allow_null=True)
    key = key_field()
    name = serializers.CharField(max_length=column_length(SubscriptionPhase, "name"))
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                        max_length=column_length(SubscriptionPhase, "description"))

    def validate_discounts(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if not value:
            return None
        discounts = DiscountsIn(data=value)
        discounts.is_valid(raise_exception=True)
        return discounts.to_wire(discounts.validated_data)


class AddItemIn(serializers.Serializer):
    phaseKey = serializers.CharField()
    rateCard = RateCardField()


class RemoveItemIn(serializers.Serializer):
    phaseKey = serializers.CharField()
    itemKey = serializers.CharField()


class AddPhaseIn(serializers.Serializer):
    phase = PhaseCreateIn()


class RemovePhaseIn(serializers.Serializer):
    phaseKey = serializers.CharField()
    shift = serializers.ChoiceField(["next", "prev"])


class StretchPhaseIn(serializers.Serializer):
    phaseKey = serializers.CharField()
    extendBy = DurationField()


class UnscheduleEditIn(serializers.Serializer):
    pass


EDIT_OPERATIONS = {
    "add_item": AddItemIn,
    "remove_item": RemoveItemIn,
    "add_phase": AddPhaseIn,
    "remove_phase": RemovePhaseIn,
    "stretch_phase": StretchPhaseIn,
    "unschedule_edit": UnscheduleEditIn,
}


def _edit_operation(op: str, v: dict[str, Any]) -> edit.EditOperation:
    if op == "add_item":
        return edit.AddItem(phase_key=v["phaseKey"], rate_card=v["rateCard"])
    if op == "remove_item":
        return edit.RemoveItem(phase_key=v["phaseKey"], item_key=v["itemKey"])
    if op == "add_phase":
        p = v["phase"]
        return edit.AddPhase(key=p["key"], name=p["name"], start_after=p["startAfter"], duration=p.get("duration"),
                             description=p.get("description"), discounts=p.get("discounts"))
    if op == "remove_phase":
        return edit.RemovePhase(phase_key=v["phaseKey"], shift=v["shift"])
    if op == "stretch_phase":
        return edit.StretchPhase(phase_key=v["phaseKey"], extend_by=v["extendBy"])
    return edit.UnscheduleEdit()


class EditOperationField(serializers.Field):
    def to_internal_value(self, data: Any) -> edit.EditOperation:
        if not isinstance(data, dict) or not isinstance(data.get("op"), str) or data["op"] not in EDIT_OPERATIONS:
            raise serializers.ValidationError({"op": f"must be one of {', '.join(EDIT_OPERATIONS)}"})
        op = EDIT_OPERATIONS[data["op"]](data=data)
        op.is_valid(raise_exception=True)
        return _edit_operation(data["op"], op.validated_data)

    def to_representation(self, value: Any) -> Any:
        return value


class SubscriptionEditIn(serializers.Serializer):
    customizations = serializers.ListField(child=EditOperationField(), max_length=100)
    timing = TimingField(required=False)


# --- subscription add-ons -------------------------------------------------------------------------------------


class AddonRefIn(serializers.Serializer):
    id = serializers.RegexField(ULID_RE)


class SubscriptionAddonCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=column_length(SubscriptionAddon, "name"))
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                        max_length=column_length(SubscriptionAddon, "description"))
    metadata = MetadataField()
    quantity = serializers.IntegerField(min_value=0, max_value=INT32_MAX)
    timing = TimingField()
    addon = AddonRefIn()


class SubscriptionAddonUpdateIn(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=column_length(SubscriptionAddon, "name"))
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                        max_length=column_length(SubscriptionAddon, "description"))
    metadata = MetadataField()
    quantity = serializers.IntegerField(required=False, min_value=0, max_value=INT32_MAX)
    timing = TimingField(required=False)


class SubscriptionAddonViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/subscriptions/{subscriptionId}/addons`: list (a plain array), create, get, update (PATCH)."""

    pagination_class = None
    lookup_url_kwarg = "subscription_addon_id"

    def get_queryset(self) -> QuerySet[SubscriptionAddon]:
        return subscription_addon_list_qs(subscription_get(subscription_id=self.kwargs["subscription_id"]))

    @cached_property
    def now(self) -> dt.datetime:  # one instant for every row of the request
        return timezone.now()

    def render(self, subscription_addon: SubscriptionAddon) -> dict[str, Any]:
        return subscription_addon_to_api(subscription_addon, self.now)

    def create(self, request: Request, subscription_id: str) -> Response:
        v = self.validated(SubscriptionAddonCreateIn).validated_data
        sa = subscription_addon_create(
            subscription_id=subscription_id, addon_id=v["addon"]["id"], quantity=v["quantity"], timing=v["timing"],
            name=v["name"], description=v.get("description"), metadata=v.get("metadata"),
        )
        return Response(subscription_addon_to_api(sa, timezone.now()), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, subscription_id: str, subscription_addon_id: str) -> Response:
        sa = subscription_addon_get(subscription_id=subscription_id, subscription_addon_id=subscription_addon_id)
        return Response(subscription_addon_to_api(sa, timezone.now()))

    def partial_update(self, request: Request, subscription_id: str, subscription_addon_id: str) -> Response:
        v = self.validated(SubscriptionAddonUpdateIn).validated_data
        sa = subscription_addon_update(
            subscription_id=subscription_id, subscription_addon_id=subscription_addon_id, quantity=v.get("quantity"),
            timing=v.get("timing"), name=v.get("name"), description=v.get("description"), metadata=v.get("metadata"),
        )
        return Response(subscription_addon_to_api(sa, timezone.now()))


# --- customers.listSubscriptions ------------------------------------------------------------------------------


class CustomerSubscriptionViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/customers/{customerIdOrKey}/subscriptions`: list."""

    filterset_class = CustomerSubscriptionFilter
    order_by = {"activeFrom": "active_from", "activeTo": "active_to"}
    default_order_by = "activeFrom"

    def get_queryset(self) -> QuerySet[Subscription]:
        customer = customer_resolve(self.kwargs["customer_id_or_key"])
        return customer_subscriptions_qs(customer_id=customer.pk)

    @cached_property
    def now(self) -> dt.datetime:  # one instant for every row of the request
        return timezone.now()

    def render(self, subscription: Subscription) -> dict[str, Any]:
        return subscription_to_api(subscription, self.now)
