"""List filters of the billing endpoints (query parameters as the spec names them)."""

from django.db.models import Q, QuerySet
from django_filters import FilterSet

from billing.models import BillingProfile, Invoice
from billing.services.profiles import billed_by_q
from customers.models import Customer
from openmeter_site.api.filters import (
    BooleanParamFilter,
    DateTimeParamFilter,
    IdListParamFilter,
    IncludeFilter,
    ListParamFilter,
    TextParamFilter,
)

# InvoiceStatus values that are whole statuses; the others (draft, issuing, payment_processing, ...) are the
# prefixes of extended ones (`draft.waiting_auto_approval`).
WHOLE_STATUSES = {"gathering", "issued", "paid", "overdue", "uncollectible", "voided"}


class ProfileFilter(FilterSet):
    includeArchived = IncludeFilter(field_name="deleted_at", param="includeArchived")

    class Meta:
        model = BillingProfile
        fields: list[str] = []


class OverrideFilter(FilterSet):
    """Customers and their billing profile: every live customer unless `includeAllCustomers=false` (then those
    with an override only)."""

    billingProfile = ListParamFilter(method="billed_by", param="billingProfile")
    customersWithoutPinnedProfile = BooleanParamFilter(method="without_pinned_profile",
                                                       param="customersWithoutPinnedProfile")
    includeAllCustomers = BooleanParamFilter(method="include_all_customers", param="includeAllCustomers", default=True)
    customerId = IdListParamFilter(field_name="pk", lookup_expr="in", param="customerId")
    customerName = TextParamFilter(field_name="name", lookup_expr="icontains")
    customerKey = TextParamFilter(field_name="key", lookup_expr="icontains")
    customerPrimaryEmail = TextParamFilter(field_name="primary_email", lookup_expr="icontains")

    class Meta:
        model = Customer
        fields: list[str] = []

    def billed_by(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        return qs.filter(billed_by_q(i.upper() for i in value))

    def without_pinned_profile(self, qs: QuerySet, name: str, value: bool) -> QuerySet:
        if not value:
            return qs
        return qs.filter(Q(billing_override__isnull=True) | Q(billing_override__billing_profile__isnull=True))

    def include_all_customers(self, qs: QuerySet, name: str, value: bool) -> QuerySet:
        return qs if value else qs.filter(billing_override__isnull=False)


class InvoiceFilter(FilterSet):
    statuses = ListParamFilter(method="with_statuses", param="statuses")
    extendedStatuses = ListParamFilter(field_name="status", lookup_expr="in", param="extendedStatuses")
    customers = IdListParamFilter(field_name="customer_id", lookup_expr="in", param="customers")
    includeDeleted = IncludeFilter(field_name="deleted_at", param="includeDeleted")
    issuedAfter = DateTimeParamFilter(field_name="issued_at", lookup_expr="gte", param="issuedAfter")
    issuedBefore = DateTimeParamFilter(field_name="issued_at", lookup_expr="lte", param="issuedBefore")
    periodStartAfter = DateTimeParamFilter(field_name="period_start", lookup_expr="gte", param="periodStartAfter")
    periodStartBefore = DateTimeParamFilter(field_name="period_start", lookup_expr="lte", param="periodStartBefore")
    createdAfter = DateTimeParamFilter(field_name="created_at", lookup_expr="gte", param="createdAfter")
    createdBefore = DateTimeParamFilter(field_name="created_at", lookup_expr="lte", param="createdBefore")

    class Meta:
        model = Invoice
        fields: list[str] = []

    def with_statuses(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        wanted = Q(status__in=[s for s in value if s in WHOLE_STATUSES])
        for prefix in (s for s in value if s not in WHOLE_STATUSES):
            wanted |= Q(status__startswith=f"{prefix}.")
        return qs.filter(wanted)
