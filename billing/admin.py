"""Back office: billing profiles, customer overrides, invoices (filters, state actions through the services,
read-only history) and a printable invoice."""

from decimal import Decimal
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from billing import selectors
from billing.api.render import lines_to_api
from billing.models import BillingProfile, CustomerOverride, Invoice, InvoiceEvent, InvoiceLine
from billing.services import invoicing, profiles, state
from billing.services.profiles import supplier_validate
from billing.services.workflow import workflow_validate
from openmeter_site.core.errors import DomainError
from openmeter_site.core.money import round_money

STATUS_GROUPS = ["gathering", "draft", "issuing", "issued", "payment_processing", "overdue", "paid", "uncollectible",
                 "voided", "delete", "deleted"]


class BillingProfileForm(forms.ModelForm):
    """Supplier and workflow go through the same service checks as the API (a field error, never a bad row)."""

    class Meta:
        model = BillingProfile
        fields = ("name", "description", "supplier", "workflow", "metadata")

    def clean_supplier(self) -> dict[str, Any]:
        return _service_checked(supplier_validate, self.cleaned_data["supplier"])

    def clean_workflow(self) -> dict[str, Any]:
        return _service_checked(workflow_validate, self.cleaned_data["workflow"])

    def clean(self) -> dict[str, Any]:
        if self.instance.deleted_at is not None:
            raise forms.ValidationError("a deleted billing profile cannot be changed")
        return super().clean()


def _service_checked(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except DomainError as exc:
        raise forms.ValidationError(exc.detail) from exc


@admin.register(BillingProfile)
class BillingProfileAdmin(admin.ModelAdmin):
    form = BillingProfileForm
    list_display = ("name", "is_default", "invoicing_app", "payment_app", "created_at", "deleted_at")
    list_filter = ("is_default", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "id")
    readonly_fields = ("id", "created_at", "updated_at", "is_default", "tax_app", "invoicing_app", "payment_app",
                       "deleted_at")
    fields = ("id", "name", "description", "is_default", "supplier", "workflow", "metadata", "tax_app",
              "invoicing_app", "payment_app", "created_at", "updated_at", "deleted_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a profile needs its apps: created through the API (billing.profiles.create)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # profiles are archived through the API (rules: not default, not pinned, invoices final)

    def save_model(self, request: HttpRequest, obj: BillingProfile, form: Any, change: bool) -> None:
        profiles.billing_profile_update(
            profile_id=obj.pk, name=obj.name, description=obj.description, metadata=obj.metadata,
            supplier=obj.supplier, default=obj.is_default, workflow=obj.workflow,
        )


@admin.register(CustomerOverride)
class CustomerOverrideAdmin(admin.ModelAdmin):
    list_display = ("customer", "billing_profile", "updated_at")
    list_filter = ("billing_profile",)
    search_fields = ("customer__name", "customer__key", "customer__id")
    raw_id_fields = ("customer",)


class StatusGroupFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status_group"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(g, g.replace("_", " ")) for g in STATUS_GROUPS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(status=value) | queryset.filter(status__startswith=f"{value}.")


class LineInline(admin.TabularInline):
    model = InvoiceLine
    fk_name = "invoice"
    fields = ("name", "parent", "status", "period_start", "period_end", "quantity", "per_unit_amount", "category",
              "amount", "discounts_total", "total")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(deleted_at__isnull=True).order_by("parent_id", "index", "created_at")


class EventInline(admin.TabularInline):
    model = InvoiceEvent
    fields = ("created_at", "from_status", "to_status", "trigger", "actor", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _run(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, action: str) -> None:
    done, failed = 0, []
    actor = f"admin:{request.user.get_username()}"
    for invoice in queryset.order_by("pk"):
        try:
            if action == "void":
                invoicing.invoice_void(invoice_id=invoice.pk, reason="voided in the back office", actor=actor)
            else:
                invoicing.invoice_action(invoice_id=invoice.pk, action=action, actor=actor)
            done += 1
        except DomainError as exc:
            failed.append(f"{invoice.number}: {exc.detail}")
    if done:
        modeladmin.message_user(request, f"{action}: {done} invoice(s) done", messages.SUCCESS)
    for message in failed:
        modeladmin.message_user(request, message, messages.ERROR)


@admin.action(description="Advance selected invoices")
def advance(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _run(modeladmin, request, queryset, "advance")


@admin.action(description="Approve selected invoices")
def approve(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _run(modeladmin, request, queryset, "approve")


@admin.action(description="Retry selected failed invoices")
def retry(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _run(modeladmin, request, queryset, "retry")


@admin.action(description="Void selected invoices")
def void(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _run(modeladmin, request, queryset, "void")


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ("number", "customer", "status", "currency", "total", "period_start", "period_end", "due_at",
                    "issued_at")
    list_filter = (StatusGroupFilter, "currency", "billing_profile", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("number", "id", "customer__name", "customer__key")
    list_select_related = ("customer",)
    date_hierarchy = "created_at"
    actions = (advance, approve, retry, void)
    inlines = (LineInline, EventInline)
    readonly_fields = ("id", "number", "customer", "billing_profile", "status", "available_actions", "currency",
                       "type", "supplier", "customer_snapshot", "workflow", "period_start", "period_end",
                       "collection_at", "draft_until", "due_at", "issued_at", "voided_at", "amount",
                       "discounts_total", "taxes_total", "total", "validation_issues", "external_ids",
                       "printable", "created_at", "updated_at", "deleted_at")
    fieldsets = (
        (None, {"fields": ("id", "number", "customer", "billing_profile", "status", "available_actions", "printable")}),
        ("Amounts", {"fields": ("currency", "amount", "discounts_total", "taxes_total", "total")}),
        ("Dates", {"fields": ("period_start", "period_end", "collection_at", "draft_until", "issued_at", "due_at",
                              "voided_at", "created_at", "updated_at", "deleted_at")}),
        ("Snapshots", {"classes": ("collapse",), "fields": ("supplier", "customer_snapshot", "workflow",
                                                            "validation_issues", "external_ids")}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # drafts are deleted through the state machine, history stays

    @admin.display(description="available actions")
    def available_actions(self, obj: Invoice) -> str:
        return ", ".join(state.available_actions(obj)) or "none"

    @admin.display(description="printable invoice")
    def printable(self, obj: Invoice) -> str:
        url = reverse("admin:billing_invoice_print", args=[obj.pk])
        return format_html('<a href="{}" target="_blank">Open printable invoice</a>', url)

    def get_urls(self) -> list:
        extra = [path("<str:invoice_id>/print/", self.admin_site.admin_view(self.print_view),
                      name="billing_invoice_print")]
        return extra + super().get_urls()

    def print_view(self, request: HttpRequest, invoice_id: str) -> HttpResponse:
        invoice = get_object_or_404(Invoice, pk=invoice_id)
        lines = lines_to_api(invoice, selectors.invoice_lines(invoice))
        money = partial(_money, currency=invoice.currency)
        for line in lines:
            line["display_total"] = money(line["totals"]["total"])
            for child in line["children"]:
                child["display_amount"] = money(child["totals"]["amount"])
                child["display_discount"] = money(child["totals"]["discountsTotal"])
        totals = {f: money(getattr(invoice, f)) for f in ("amount", "discounts_total", "taxes_total", "total")}
        context = {"invoice": invoice, "lines": lines, "totals": totals}
        return TemplateResponse(request, "billing/invoice_print.html", context)


def _money(value: Decimal | str, currency: str) -> str:
    """An amount with exactly the currency's minor units, e.g. 62.3 USD → "62.30"."""
    return format(round_money(Decimal(value), currency), "f")
