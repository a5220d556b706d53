"""Entitlements API. V2 is customer-scoped (`/api/v2/customers/{customer}/entitlements…`); V1 is the
deprecated subject-scoped view of the same rows (`/api/v1/subjects/{subject}/entitlements…`), where the subject
names the customer whose usage attribution contains it. Each view class serves both, switched by `v2`."""

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.models import Customer
from customers.services import customer_for_subject, customer_get
from entitlements import balance, services
from entitlements.api.render import entitlement_to_api, grant_to_api, history_to_api, value_to_api
from entitlements.api.serializers import (
    EntitlementCreateSerializer,
    EntitlementCreateV2Serializer,
    GrantCreateSerializer,
    GrantCreateV2Serializer,
    ResetSerializer,
)
from entitlements.models import Entitlement
from openmeter_site.api.pagination import order_queryset, paginate, paginate_or_list
from openmeter_site.api.params import get_bool, get_choice, get_datetime, get_list, get_str
from openmeter_site.core.errors import InvalidInput, NotFound
from openmeter_site.core.time import parse_time_zone

ENTITLEMENT_ORDER_BY = {"createdAt": "created_at", "updatedAt": "updated_at"}
GRANT_ORDER_BY = {"id": "id", "createdAt": "created_at", "updatedAt": "updated_at"}


class ScopedView(APIView):
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


class EntitlementsView(ScopedView):
    def get(self, request: Request, owner: str) -> Response:
        q = request.query_params
        customer = self.owner(owner)
        qs = services.entitlement_list_qs(customer_ids=[customer.pk], include_deleted=get_bool(q, "includeDeleted"))
        qs = order_queryset(q, qs, ENTITLEMENT_ORDER_BY, "createdAt")
        if self.v2:
            return Response(paginate(q, qs, self.render))
        return Response([self.render(e) for e in qs])

    def post(self, request: Request, owner: str) -> Response:
        customer = self.owner(owner)
        body = self.create_serializer(request)
        entitlement = services.entitlement_create(customer=customer, feature=body.feature(), **body.create_kwargs())
        return Response(self.render(entitlement), status=201)


class EntitlementView(ScopedView):
    def get(self, request: Request, owner: str, entitlement: str) -> Response:
        return Response(self.render(self.entitlement(owner, entitlement)))

    def delete(self, request: Request, owner: str, entitlement: str) -> Response:
        services.entitlement_delete(entitlement=self.entitlement(owner, entitlement))
        return Response(status=204)


class EntitlementOverrideView(ScopedView):
    def put(self, request: Request, owner: str, entitlement: str) -> Response:
        current = self.entitlement(owner, entitlement)
        body = self.create_serializer(request)
        kwargs = body.create_kwargs()
        new = services.entitlement_override(entitlement=current, feature=body.feature(), **kwargs)
        return Response(self.render(new), status=201)


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


class EntitlementHistoryView(ScopedView):
    def get(self, request: Request, owner: str, entitlement: str) -> Response:
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


class EntitlementResetView(ScopedView):
    def post(self, request: Request, owner: str, entitlement: str) -> Response:
        found = self.entitlement(owner, entitlement)
        body = ResetSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        v = body.validated_data
        services.entitlement_reset(
            entitlement=found,
            effective_at=v.get("effectiveAt"),
            retain_anchor=v.get("retainAnchor", False),
            preserve_overage=v.get("preserveOverage"),
        )
        return Response(status=204)


class EntitlementGrantsView(ScopedView):
    def get(self, request: Request, owner: str, entitlement: str) -> Response:
        q = request.query_params
        found = self.entitlement(owner, entitlement)
        qs = services.grant_list_qs(entitlement=found, include_deleted=get_bool(q, "includeDeleted"))
        qs = order_queryset(q, qs, GRANT_ORDER_BY, "createdAt")
        if self.v2:
            return Response(paginate_envelope(q, qs, lambda g: grant_to_api(g, v2=True)))
        return Response([grant_to_api(g, v2=False) for g in qs])

    def post(self, request: Request, owner: str, entitlement: str) -> Response:
        found = self.entitlement(owner, entitlement)
        cls = GrantCreateV2Serializer if self.v2 else GrantCreateSerializer
        body = cls(data=request.data)
        body.is_valid(raise_exception=True)
        grant = services.grant_create(entitlement=found, data=body.to_input())
        return Response(grant_to_api(grant, v2=self.v2), status=201)


def paginate_envelope(q: Any, qs: Any, serialize: Any) -> dict[str, Any]:
    """Always the page envelope; legacy `offset`/`limit` pick the slice when no page is asked."""
    if "page" in q or "pageSize" in q or ("offset" not in q and "limit" not in q):
        return paginate(q, qs, serialize)
    items = paginate_or_list(q, qs, serialize)
    return {"totalCount": qs.count(), "page": 1, "pageSize": len(items), "items": items}


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


class EntitlementListView(APIView):
    """GET /api/v2/entitlements (page envelope) and GET /api/v1/entitlements (array unless page/pageSize)."""

    v2 = True

    def get(self, request: Request) -> Response:
        q = request.query_params
        qs = services.entitlement_list_qs(
            customer_ids=get_list(q, "customerIds"),
            customer_keys=get_list(q, "customerKeys"),
            subject_keys=get_list(q, "subject"),
            feature=get_list(q, "feature"),
            types=get_list(q, "entitlementType"),
            exclude_inactive=get_bool(q, "excludeInactive"),
        )
        qs = order_queryset(q, qs, ENTITLEMENT_ORDER_BY, "createdAt")
        render = lambda e: entitlement_to_api(e, v2=self.v2)  # noqa: E731
        if self.v2:
            return Response(paginate_envelope(q, qs, render))
        return Response(paginate_or_list(q, qs, render))


class EntitlementByIdView(APIView):
    v2 = True

    def get(self, request: Request, entitlement_id: str) -> Response:
        return Response(entitlement_to_api(services.entitlement_get(entitlement_id=entitlement_id), v2=self.v2))


class GrantListView(APIView):
    """GET /api/v2/grants (page envelope) and GET /api/v1/grants (array unless page/pageSize)."""

    v2 = True

    def get(self, request: Request) -> Response:
        q = request.query_params
        qs = services.grant_list_qs(
            customers=get_list(q, "customer"),
            subject_keys=get_list(q, "subject"),
            feature=get_list(q, "feature"),
            include_deleted=get_bool(q, "includeDeleted"),
        )
        qs = order_queryset(q, qs, GRANT_ORDER_BY, "createdAt")
        render = lambda g: grant_to_api(g, v2=self.v2)  # noqa: E731
        if self.v2:
            return Response(paginate_envelope(q, qs, render))
        return Response(paginate_or_list(q, qs, render))


class GrantVoidView(APIView):
    def delete(self, request: Request, grant_id: str) -> Response:
        services.grant_void(grant=services.grant_get(grant_id=grant_id), at=get_datetime(request.query_params, "at"))
        return Response(status=204)
