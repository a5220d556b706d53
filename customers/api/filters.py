"""The customer list's filters (query parameters as the spec names them)."""

from django.db.models import Q, QuerySet
from django_filters import FilterSet

from customers.models import Customer
from openmeter_site.api.filters import IncludeFilter, TextParamFilter


class CustomerFilter(FilterSet):
    """Deleted customers are left out unless asked for; the texts match any part, ignoring case."""

    includeDeleted = IncludeFilter(field_name="deleted_at", param="includeDeleted")
    key = TextParamFilter(lookup_expr="icontains")
    name = TextParamFilter(lookup_expr="icontains")
    primaryEmail = TextParamFilter(field_name="primary_email", lookup_expr="icontains")
    subject = TextParamFilter(method="with_subject")

    class Meta:
        model = Customer
        fields: list[str] = []

    def with_subject(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs.filter(Q(subjects__subject_key__icontains=value) | Q(key__icontains=value)).distinct()
