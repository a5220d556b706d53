"""Notification channels, rules and events: HTTP only; the services do the work."""

from django.db.models import Q
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import selectors
from notifications.api.serializers import (
    ChannelCreateSerializer,
    ResendSerializer,
    RuleCreateSerializer,
    channel_to_api,
    event_to_api,
    rule_to_api,
)
from notifications.services import channels as channel_services
from notifications.services import events as event_services
from notifications.services import rules as rule_services
from notifications.services.samples import rule_test
from openmeter_site.api.pagination import order_queryset, paginate
from openmeter_site.api.params import get_bool, get_datetime, get_list

ORDER_BY = {"id": "id", "type": "type", "createdAt": "created_at", "updatedAt": "updated_at"}
EVENT_ORDER_BY = {"id": "id", "createdAt": "created_at"}


def _validated(serializer_class: type, data: object) -> ChannelCreateSerializer | RuleCreateSerializer:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer


class ChannelListView(APIView):
    def get(self, request: Request) -> Response:
        q = request.query_params
        qs = selectors.channel_list_qs(
            include_deleted=get_bool(q, "includeDeleted"), include_disabled=get_bool(q, "includeDisabled")
        )
        return Response(paginate(q, order_queryset(q, qs, ORDER_BY, "id"), channel_to_api))

    def post(self, request: Request) -> Response:
        serializer = _validated(ChannelCreateSerializer, request.data)
        channel = channel_services.channel_create(**serializer.service_kwargs())
        return Response(channel_to_api(channel), status=status.HTTP_201_CREATED)


class ChannelDetailView(APIView):
    def get(self, request: Request, channel_id: str) -> Response:
        return Response(channel_to_api(channel_services.channel_get(channel_id=channel_id)))

    def put(self, request: Request, channel_id: str) -> Response:
        serializer = _validated(ChannelCreateSerializer, request.data)
        channel = channel_services.channel_update(channel_id=channel_id, **serializer.service_kwargs())
        return Response(channel_to_api(channel))

    def delete(self, request: Request, channel_id: str) -> Response:
        channel_services.channel_delete(channel_id=channel_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _rule(rule_id: str) -> dict:
    rule = selectors.rule_list_qs(include_deleted=True, include_disabled=True).filter(pk=rule_id).first()
    if rule is None:
        rule_services.rule_get(rule_id=rule_id)  # raises the 404
    return rule_to_api(rule)


class RuleListView(APIView):
    def get(self, request: Request) -> Response:
        q = request.query_params
        qs = selectors.rule_list_qs(
            include_deleted=get_bool(q, "includeDeleted"), include_disabled=get_bool(q, "includeDisabled")
        )
        features = get_list(q, "feature")
        if features:
            qs = qs.filter(Q(features__id__in=features) | Q(features__key__in=features))
        channels = get_list(q, "channel")
        if channels:
            qs = qs.filter(channels__id__in=channels)
        if features or channels:
            qs = qs.distinct()
        return Response(paginate(q, order_queryset(q, qs, ORDER_BY, "id"), rule_to_api))

    def post(self, request: Request) -> Response:
        serializer = _validated(RuleCreateSerializer, request.data)
        rule = rule_services.rule_create(**serializer.service_kwargs())
        return Response(_rule(rule.id), status=status.HTTP_201_CREATED)


class RuleDetailView(APIView):
    def get(self, request: Request, rule_id: str) -> Response:
        return Response(_rule(rule_id))

    def put(self, request: Request, rule_id: str) -> Response:
        serializer = _validated(RuleCreateSerializer, request.data)
        rule = rule_services.rule_update(rule_id=rule_id, **serializer.service_kwargs())
        return Response(_rule(rule.id))

    def delete(self, request: Request, rule_id: str) -> Response:
        rule_services.rule_delete(rule_id=rule_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RuleTestView(APIView):
    def post(self, request: Request, rule_id: str) -> Response:
        event = rule_test(rule_id=rule_id)
        return Response(event_to_api(selectors.event_list_qs().get(pk=event.pk)), status=status.HTTP_201_CREATED)


class EventListView(APIView):
    def get(self, request: Request) -> Response:
        q = request.query_params
        qs = selectors.event_list_qs()
        start, end = get_datetime(q, "from"), get_datetime(q, "to")
        if start is not None:
            qs = qs.filter(created_at__gte=start)
        if end is not None:
            qs = qs.filter(created_at__lte=end)
        if features := get_list(q, "feature"):
            qs = qs.filter(Q(feature_id__in=features) | Q(feature_key__in=features))
        if subjects := get_list(q, "subject"):
            qs = qs.filter(subject_key__in=subjects)
        if rules := get_list(q, "rule"):
            qs = qs.filter(rule_id__in=rules)
        if channels := get_list(q, "channel"):
            qs = qs.filter(deliveries__channel_id__in=channels).distinct()
        return Response(paginate(q, order_queryset(q, qs, EVENT_ORDER_BY, "id"), event_to_api))


class EventDetailView(APIView):
    def get(self, request: Request, event_id: str) -> Response:
        event = selectors.event_list_qs().filter(pk=event_id).first()
        if event is None:
            event_services.event_get(event_id=event_id)  # raises the 404
        return Response(event_to_api(event))


class EventResendView(APIView):
    def post(self, request: Request, event_id: str) -> Response:
        serializer = ResendSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        event_services.event_resend(event_id=event_id, channel_ids=serializer.validated_data.get("channels"))
        return Response(status=status.HTTP_202_ACCEPTED)
