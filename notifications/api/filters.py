"""List filters of the notification endpoints (query parameters as the spec names them)."""

from django.db.models import Q, QuerySet
from django_filters import FilterSet

from notifications.models import NotificationChannel, NotificationEvent, NotificationRule
from openmeter_site.api.filters import BooleanParamFilter, IncludeFilter, ListParamFilter
from openmeter_site.api.params import get_datetime


class _LiveFilter(FilterSet):
    """Deleted and disabled ones are left out unless asked for."""

    includeDeleted = IncludeFilter(field_name="deleted_at", param="includeDeleted")
    includeDisabled = BooleanParamFilter(method="include_disabled", param="includeDisabled")

    def include_disabled(self, qs: QuerySet, name: str, value: bool) -> QuerySet:
        return qs if value else qs.filter(disabled=False)


class ChannelFilter(_LiveFilter):
    class Meta:
        model = NotificationChannel
        fields: list[str] = []


class RuleFilter(_LiveFilter):
    feature = ListParamFilter(method="with_features", param="feature")
    channel = ListParamFilter(method="with_channels", param="channel")

    class Meta:
        model = NotificationRule
        fields: list[str] = []

    def with_features(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        return qs.filter(Q(features__id__in=value) | Q(features__key__in=value)).distinct()

    def with_channels(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        return qs.filter(channels__id__in=value).distinct()


class EventFilter(FilterSet):
    """Also `from` and `to` (a Python keyword cannot name a filter): created at or after, at or before."""

    feature = ListParamFilter(method="with_features", param="feature")
    subject = ListParamFilter(field_name="subject_key", lookup_expr="in", param="subject")
    rule = ListParamFilter(field_name="rule_id", lookup_expr="in", param="rule")
    channel = ListParamFilter(field_name="deliveries__channel_id", lookup_expr="in", distinct=True, param="channel")

    class Meta:
        model = NotificationEvent
        fields: list[str] = []

    def with_features(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        return qs.filter(Q(feature_id__in=value) | Q(feature_key__in=value))

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        qs = super().filter_queryset(queryset)
        start, end = get_datetime(self.data, "from"), get_datetime(self.data, "to")
        if start is not None:
            qs = qs.filter(created_at__gte=start)
        if end is not None:
            qs = qs.filter(created_at__lte=end)
        return qs
