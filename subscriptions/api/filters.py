"""The customer's subscription list's filters (query parameters as the spec names them)."""

from django.db.models import Q, QuerySet
from django.utils import timezone
from django_filters import FilterSet

from openmeter_site.api.filters import ChoiceListParamFilter
from subscriptions.models import Subscription, SubscriptionStatus
from subscriptions.selectors import subscription_status_q


class CustomerSubscriptionFilter(FilterSet):
    status = ChoiceListParamFilter(method="with_statuses", param="status", choices=SubscriptionStatus.values)

    class Meta:
        model = Subscription
        fields: list[str] = []

    def with_statuses(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        now = timezone.now()
        wanted = Q()
        for status in value:
            wanted |= subscription_status_q(status, now)
        return qs.filter(wanted)
