"""Entitlements API. V2 is customer-scoped (`/api/v2/customers/{customer}/entitlements…`); V1 is the
deprecated subject-scoped view of the same rows (`/api/v1/subjects/{subject}/entitlements…`), where the subject
names the customer whose usage attribution contains it. Each V2 class serves V1 too, switched by `v2` (a V1
subclass where the list's shape or the verbs differ)."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.models import Customer
from customers.services import customer_for_subject, customer_get
from entitlements import balance, services
from entitlements.api.filters import EntitlementFilter, EntitlementGrantFilter, GrantFilter, OwnedEntitlementFilter
from entitlements.api.render import entitlement_to_api, grant_to_api, history_to_api, value_to_api
from entitlements.api.serializers import (
    EntitlementCreateSerializer,
    EntitlementCreateV2Serializer,
    GrantCreateSerializer,
    GrantCreateV2Serializer,
    ResetSerializer,
)
from entitlements.models import Entitlement, Grant
from openmeter_site.api.pagination import EnvelopeOrOffsetPagination, PageOrOffsetPagination
from openmeter_site.api.params import get_choice, get_datetime, get_str
from openmeter_site.api.routers import ListMixin, ResourceViewSet
from openmeter_site.core.errors import InvalidInput, NotFound
from openmeter_site.core.time import parse_time_zone

ENTITLEMENT_ORDER_BY = {"createdAt": "created_at", "updatedAt": "updated_at"}
GRANT_ORDER_BY = {"id": "id", "createdAt": "created_at", "updatedAt": "updated_at"}


class Scoped:
    """`owner` is a customer id/key (V2) or a subject key (V1)."""

    v2 = True

    def owner(self, owner: str) -> Customer:
        if self.v2:
            return customer_get(id_or_key=owner)
        customer = customer_for_subject(subject_key=owner)
        if customer is None:
            raise NotFound(f"subject {owner!r} belongs to no customer (entitlements are owned by customers)")
        return customer

    def entitlement(self, owner: str, entitlement: str, **kwargs: Any) -> Entitlement:
        return services.entitlement_for_customer(customer=self.owner(owner), id_or_feature_key=entitlement, **kwargs)

    def render(self, entitlement: Entitlement) -> dict[str, Any]:
        return entitlement_to_api(entitlement, v2=self.v2)

    def create_serializer(self, request: Request) -> EntitlementCreateSerializer:
        cls = EntitlementCreateV2Serializer if self.v2 else EntitlementCreateSerializer
        body = cls(data=request.data)
        body.is_valid(raise_exception=True)
        return body


class ScopedView(Scoped, APIView):
    pass


class OwnedEntitlementViewSet(ListMixin, Scoped, ResourceViewSet):
    """`/api/v2/customers/{customer}/entitlements`: list, create, get, delete, and the actions `override` (PUT),
    `history` and `reset`. The value (a hot path) is a view of its own."""

    filterset_class = OwnedEntitlementFilter
    order_by, default_order_by = ENTITLEMENT_ORDER_BY, "createdAt"
    lookup_url_kwarg = "entitlement"

    def get_queryset(self) -> QuerySet[Entitlement]:
        customer = self.owner(self.kwargs["owner"])
        return services.entitlement_list_qs(include_deleted=True).filter(customer_id=customer.pk)

    def create(self, request: Request, owner: str) -> Response:
        customer = self.owner(owner)
        body = self.create_serializer(request)
        entitlement = services.entitlement_create(customer=customer, feature=body.feature(), **body.create_kwargs())
        return Response(self.render(entitlement), status=201)

    def retrieve(self, request: Request, owner: str, entitlement: str) -> Response:
        return Response(self.render(self.entitlement(owner, entitlement)))

    def destroy(self, request: Request, owner: str, entitlement: str) -> Response:
        services.entitlement_delete(entitlement=self.entitlement(owner, entitlement))
        return Response(status=204)

    @action(detail=True, methods=["put"])
    def override(self, request: Request, owner: str, entitlement: str) -> Response:
        current = self.entitlement(owner, entitlement)
        body = self.create_serializer(request)
        kwargs = body.create_kwargs()
        new = services.entitlement_override(entitlement=current, feature=body.feature(), **kwargs)
        return Response(self.render(new), status=201)

    @action(detail=True, methods=["get"])
    def history(self, request: Request, owner: str, entitlement: str) -> Response:
        q = request.query_params
        window_size = get_choice(q, "windowSize", ["MINUTE", "HOUR", "DAY", "MONTH"])
        if window_size is None:
            raise InvalidInput("windowSize: required (MINUTE, HOUR, DAY or MONTH)")
        found = self.entitlement(owner, entitlement)
        history = balance.history(
            entitlement=found,
            start=get_datetime(q, "from"),
            end=get_datetime(q, "to"),
            window_size=window_size,
            tz=parse_time_zone(get_str(q, "windowTimeZone")),
        )
        return Response(history_to_api(history))

    @action(detail=True, methods=["post"])
    def reset(self, request: Request, owner: str, entitlement: str) -> Response:
        found = self.entitlement(owner, entitlement)
        v = self.validated(ResetSerializer, request.data or {}).validated_data
        services.entitlement_reset(
            entitlement=found,
            effective_at=v.get("effectiveAt"),
            retain_anchor=v.get("retainAnchor", False),
            preserve_overage=v.get("preserveOverage"),
        )
        return Response(status=204)


class SubjectEntitlementViewSet(OwnedEntitlementViewSet):
    """`/api/v1/subjects/{subject}/entitlements`: as V2, the list a plain array of every row."""

    v2 = False
    pagination_class = None


class EntitlementGrantViewSet(ListMixin, Scoped, ResourceViewSet):
    """`/api/v2/customers/{customer}/entitlements/{entitlement}/grants`: list, create."""

    filterset_class = EntitlementGrantFilter
    pagination_class = EnvelopeOrOffsetPagination
    order_by, default_order_by = GRANT_ORDER_BY, "createdAt"

    def get_queryset(self) -> QuerySet[Grant]:
        found = self.entitlement(self.kwargs["owner"], self.kwargs["entitlement"])
        return services.grant_list_qs(entitlement=found, include_deleted=True)

    def render(self, grant: Grant) -> dict[str, Any]:
        return grant_to_api(grant, v2=self.v2)

    def create(self, request: Request, owner: str, entitlement: str) -> Response:
        found = self.entitlement(owner, entitlement)
        body = self.validated(GrantCreateV2Serializer if self.v2 else GrantCreateSerializer)
        grant = services.grant_create(entitlement=found, data=body.to_input())
        return Response(self.render(grant), status=201)


class SubjectEntitlementGrantViewSet(EntitlementGrantViewSet):
    """`/api/v1/subjects/{subject}/entitlements/{entitlement}/grants`: as V2, the list a plain array."""

    v2 = False
    pagination_class = None


class EntitlementValueView(ScopedView):
    def get(self, request: Request, owner: str, entitlement: str) -> Response:
        at = get_datetime(request.query_params, "time")
        if self.v2:  # no entitlement at that time: `{"hasAccess": false}` (upstream's NoAccessValue)
            value = services.entitlement_value_or_no_access(
                customer_id_or_key=owner, id_or_feature_key=entitlement, at=at)
        else:  # V1 by subject: a feature with no entitlement active at that time is a 404, as upstream
            found = self.entitlement(owner, entitlement, at=at, only_active=True)
            value = services.entitlement_value(entitlement=found, at=at)
        return Response(value_to_api(value, v2=self.v2))


class CustomerFeatureValueView(APIView):
    """`customers.entitlementsV1.value`: GET /api/v1/customers/{customer}/entitlements/{featureKey}/value."""

    def get(self, request: Request, owner: str, feature_key: str) -> Response:
        at = get_datetime(request.query_params, "time")
        value = services.entitlement_value_or_no_access(customer_id_or_key=owner, id_or_feature_key=feature_key, at=at)
        return Response(value_to_api(value, v2=False))


class CustomerAccessView(APIView):
    """`customers.getAccess`: GET /api/v1/customers/{customer}/access, the customer's access to every feature."""

    def get(self, request: Request, owner: str) -> Response:
        customer = customer_get(id_or_key=owner)
        access = services.customer_access(customer=customer, at=get_datetime(request.query_params, "time"))
        return Response({"entitlements": {key: value_to_api(v, v2=False) for key, v in access.items()}})


class EntitlementViewSet(ListMixin, ResourceViewSet):
    """`/api/v2/entitlements`: list (the page envelope) and get."""

    v2 = True
    filterset_class = EntitlementFilter
    pagination_class = EnvelopeOrOffsetPagination
    order_by, default_order_by = ENTITLEMENT_ORDER_BY, "createdAt"
    lookup_url_kwarg = "entitlement_id"

    def get_queryset(self) -> QuerySet[Entitlement]:
        return services.entitlement_list_qs()

    def render(self, entitlement: Entitlement) -> dict[str, Any]:
        return entitlement_to_api(entitlement, v2=self.v2)

    def retrieve(self, request: Request, entitlement_id: str) -> Response:
        return Response(self.render(services.entitlement_get(entitlement_id=entitlement_id)))


class EntitlementV1ViewSet(EntitlementViewSet):
    """`/api/v1/entitlements`: list (a plain array unless `page`/`pageSize` is sent) and get."""

    v2 = False
    pagination_class = PageOrOffsetPagination


class GrantViewSet(ListMixin, ResourceViewSet):
    """`/api/v2/grants`: list (the page envelope)."""

    v2 = True
    filterset_class = GrantFilter
    pagination_class = EnvelopeOrOffsetPagination
    order_by, default_order_by = GRANT_ORDER_BY, "createdAt"
    lookup_url_kwarg = "grant_id"

    def get_queryset(self) -> QuerySet[Grant]:
        return services.grant_list_qs(include_deleted=True)

    def render(self, grant: Grant) -> dict[str, Any]:
        return grant_to_api(grant, v2=self.v2)


class GrantV1ViewSet(GrantViewSet):
    """`/api/v1/grants`: list (a plain array unless `page`/`pageSize` is sent) and delete (void)."""

    v2 = False
    pagination_class = PageOrOffsetPagination

    def destroy(self, request: Request, grant_id: str) -> Response:
        services.grant_void(grant=services.grant_get(grant_id=grant_id), at=get_datetime(request.query_params, "at"))
        return Response(status=204)
