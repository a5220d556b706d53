"""Back office for customers: their subjects, and each metered feature's usage in the current period."""

from decimal import Decimal

from django.contrib import admin, messages
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

from customers.models import Customer, CustomerSubject
from customers.services import customer_delete
from entitlements.admin_views import customer_usage_rows
from openmeter_site.core.errors import DomainError


class CustomerSubjectInline(admin.TabularInline):
    model = CustomerSubject
    extra = 0
    fields = ["subject_key", "deleted_at"]
    readonly_fields = ["deleted_at"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "primary_email", "currency", "subject_list", "created_at", "deleted_at"]
    list_filter = ["currency", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key", "primary_email", "subjects__subject_key"]
    readonly_fields = ["id", "created_at", "updated_at", "deleted_at", "current_usage"]
    fields = ["id", "name", "key", "description", "primary_email", "currency", "billing_address", "metadata",
              "annotations", "created_at", "updated_at", "deleted_at", "current_usage"]
    inlines = [CustomerSubjectInline]
    actions = ["soft_delete"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("subjects")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # customers are soft-deleted through the action, which also ends their entitlements

    @admin.display(description="subjects")
    def subject_list(self, obj: Customer) -> str:
        return ", ".join(s.subject_key for s in obj.subjects.all() if s.deleted_at is None)

    @admin.display(description="usage in the current period")
    def current_usage(self, obj: Customer) -> SafeString:
        if not obj.pk:
            return mark_safe("—")
        rows = customer_usage_rows(customer=obj)
        if not rows:
            return mark_safe("no metered features")
        header = mark_safe(
            "<table><tr><th>feature</th><th>period</th><th>usage</th><th>balance</th><th>overage</th><th>access</th></tr>"
        )
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (r.feature_key, r.period_start, r.period_end, _num(r.usage), _num(r.balance), _num(r.overage),
                 "—" if r.has_access is None else ("yes" if r.has_access else "no"))
                for r in rows
            ),
        )
        return header + body + mark_safe("</table>")

    @admin.action(description="Delete selected customers (soft delete; ends their entitlements)")
    def soft_delete(self, request, queryset):
        done = 0
        for customer in queryset.filter(deleted_at__isnull=True):
            try:
                customer_delete(customer=customer)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{customer}: {exc.detail}", level=messages.ERROR)
        self.message_user(request, f"Deleted {done} customer(s).")


def _num(value: Decimal | None) -> str:
    return "—" if value is None else format(value.normalize(), "f")
