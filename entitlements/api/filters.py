"""List filters of the entitlement and grant endpoints (query parameters as the spec names them)."""

from django.db.models import Q, QuerySet
from django.utils import timezone
from django_filters import FilterSet

from entitlements.models import Entitlement, EntitlementType, Grant
from entitlements.services import active_at
from openmeter_site.api.filters import (
    BooleanParamFilter,
    ChoiceListParamFilter,
    IdListParamFilter,
    IncludeFilter,
    ListParamFilter,
)
from openmeter_site.core.ids import is_ulid


class OwnedEntitlementFilter(FilterSet):
    """A customer's (V2) or subject's (V1) entitlements."""

    includeDeleted = IncludeFilter(field_name="deleted_at", param="includeDeleted")

    class Meta:
        model = Entitlement
        fields: list[str] = []


class EntitlementFilter(FilterSet):
    """Every customer's entitlements; a subject names the customer whose usage attribution has it, or whose key
    it is."""

    customerIds = IdListParamFilter(field_name="customer_id", lookup_expr="in", param="customerIds")
    customerKeys = ListParamFilter(field_name="customer__key", lookup_expr="in", param="customerKeys")
    subject = ListParamFilter(method="with_subjects", param="subject")
    feature = ListParamFilter(method="with_features", param="feature")
    entitlementType = ChoiceListParamFilter(field_name="type", lookup_expr="in", param="entitlementType",
                                            choices=EntitlementType.values)
    excludeInactive = BooleanParamFilter(method="exclude_inactive", param="excludeInactive")

    class Meta:
        model = Entitlement
        fields: list[str] = []

    def with_subjects(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        return qs.filter(Q(customer__subjects__subject_key__in=value) | Q(customer__key__in=value)).distinct()

    def with_features(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        return qs.filter(Q(feature_key__in=value) | Q(feature_id__in=value))

    def exclude_inactive(self, qs: QuerySet, name: str, value: bool) -> QuerySet:
        return active_at(qs, timezone.now()) if value else qs


class EntitlementGrantFilter(FilterSet):
    """One entitlement's grants."""

    includeDeleted = IncludeFilter(field_name="deleted_at", param="includeDeleted")

    class Meta:
        model = Grant
        fields: list[str] = []


class GrantFilter(EntitlementGrantFilter):
    """Every entitlement's grants: `customer` is an id or a key; `subject` as for entitlements."""

    customer = ListParamFilter(method="with_customers", param="customer")
    subject = ListParamFilter(method="with_subjects", param="subject")
    feature = ListParamFilter(method="with_features", param="feature")

    class Meta:
        model = Grant
        fields: list[str] = []

    def with_customers(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        ids = [c.upper() for c in value if is_ulid(c)]
        return qs.filter(Q(entitlement__customer_id__in=ids) | Q(entitlement__customer__key__in=value))

    def with_subjects(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        return qs.filter(
            Q(entitlement__customer__subjects__subject_key__in=value) | Q(entitlement__customer__key__in=value)
        ).distinct()

    def with_features(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        return qs.filter(Q(entitlement__feature_key__in=value) | Q(entitlement__feature_id__in=value))
