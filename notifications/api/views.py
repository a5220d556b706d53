"""Notification channels, rules and events: ViewSets doing HTTP only; the services do the work."""

from django.db.models import QuerySet
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from notifications import selectors
from notifications.api.filters import ChannelFilter, EventFilter, RuleFilter
from notifications.api.serializers import (
    ChannelCreateSerializer,
    ResendSerializer,
    RuleCreateSerializer,
    channel_to_api,
    event_to_api,
    rule_to_api,
)
from notifications.models import NotificationChannel, NotificationEvent, NotificationRule
from notifications.services import channels as channel_services
from notifications.services import events as event_services
from notifications.services import rules as rule_services
from notifications.services.samples import rule_test
from openmeter_site.api.routers import ListMixin, ResourceViewSet

ORDER_BY = {"id": "id", "type": "type", "createdAt": "created_at", "updatedAt": "updated_at"}
EVENT_ORDER_BY = {"id": "id", "createdAt": "created_at"}


class ChannelViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/notification/channels`: list, create, get, update (PUT), delete."""

    filterset_class = ChannelFilter
    order_by, default_order_by = ORDER_BY, "id"
    lookup_url_kwarg = "channel_id"

    def get_queryset(self) -> QuerySet[NotificationChannel]:
        return selectors.channel_list_qs(include_deleted=True, include_disabled=True)

    def render(self, channel: NotificationChannel) -> dict:
        return channel_to_api(channel)

    def create(self, request: Request) -> Response:
        serializer = self.validated(ChannelCreateSerializer)
        channel = channel_services.channel_create(**serializer.service_kwargs())
        return Response(channel_to_api(channel), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, channel_id: str) -> Response:
        return Response(channel_to_api(channel_services.channel_get(channel_id=channel_id)))

    def update(self, request: Request, channel_id: str) -> Response:
        serializer = self.validated(ChannelCreateSerializer)
        channel = channel_services.channel_update(channel_id=channel_id, **serializer.service_kwargs())
        return Response(channel_to_api(channel))

    def destroy(self, request: Request, channel_id: str) -> Response:
        channel_services.channel_delete(channel_id=channel_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _rule(rule_id: str) -> dict:
    rule = selectors.rule_list_qs(include_deleted=True, include_disabled=True).filter(pk=rule_id).first()
    if rule is None:
        rule_services.rule_get(rule_id=rule_id)  # raises the 404
    return rule_to_api(rule)


class RuleViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/notification/rules`: list, create, get, update (PUT), delete, and `test` (send a sample event)."""

    filterset_class = RuleFilter
    order_by, default_order_by = ORDER_BY, "id"
    lookup_url_kwarg = "rule_id"

    def get_queryset(self) -> QuerySet[NotificationRule]:
        return selectors.rule_list_qs(include_deleted=True, include_disabled=True)

    def render(self, rule: NotificationRule) -> dict:
        return rule_to_api(rule)

    def create(self, request: Request) -> Response:
        serializer = self.validated(RuleCreateSerializer)
        rule = rule_services.rule_create(**serializer.service_kwargs())
        return Response(_rule(rule.id), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, rule_id: str) -> Response:
        return Response(_rule(rule_id))

    def update(self, request: Request, rule_id: str) -> Response:
        serializer = self.validated(RuleCreateSerializer)
        rule = rule_services.rule_update(rule_id=rule_id, **serializer.service_kwargs())
        return Response(_rule(rule.id))

    def destroy(self, request: Request, rule_id: str) -> Response:
        rule_services.rule_delete(rule_id=rule_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def test(self, request: Request, rule_id: str) -> Response:
        event = rule_test(rule_id=rule_id)
        return Response(event_to_api(selectors.event_list_qs().get(pk=event.pk)), status=status.HTTP_201_CREATED)


class EventViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/notification/events`: list, get, and `resend`."""

    filterset_class = EventFilter
    order_by, default_order_by = EVENT_ORDER_BY, "id"
    lookup_url_kwarg = "event_id"

    def get_queryset(self) -> QuerySet[NotificationEvent]:
        return selectors.event_list_qs()

    def render(self, event: NotificationEvent) -> dict:
        return event_to_api(event)

    def retrieve(self, request: Request, event_id: str) -> Response:
        event = self.get_queryset().filter(pk=event_id).first()
        if event is None:
            event_services.event_get(event_id=event_id)  # raises the 404
        return Response(event_to_api(event))

    @action(detail=True, methods=["post"])
    def resend(self, request: Request, event_id: str) -> Response:
        serializer = self.validated(ResendSerializer, request.data or {})
        event_services.event_resend(event_id=event_id, channel_ids=serializer.validated_data.get("channels"))
        return Response(status=status.HTTP_202_ACCEPTED)
