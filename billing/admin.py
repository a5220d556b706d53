"""Back office: billing profiles, customer overrides and invoices. An invoice's page shows its lines (detailed lines
under their parent line) and totals as money, and offers the actions its state allows, each through the service
the API's action calls; the printable invoice and a CSV of its lines."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing import plugins, selectors
from billing.admin_actions import invoiced_message
from billing.admin_display import (
    external_ids_html,
    invoice_dates,
    invoice_rows,
    party_text,
    total_rows,
    workflow_text,
    write_lines_csv,
)
from billing.admin_forms import BillingProfileForm, CustomerOverrideForm
from billing.models import BillingProfile, CustomerOverride, Invoice, InvoiceEvent, status_words
from billing.models import InvoiceStatus as S
from billing.services import actions, drafts, profiles, state
from billing.services.profiles import ProfileApps
from openmeter_site.admin_ui.actions import (
    ActionForm,
    ObjectAction,
    ObjectActionsMixin,
    actor,
    confirm_bulk,
    for_each_selected,
)
from openmeter_site.admin_ui.display import money, period, when
from openmeter_site.admin_ui.filters import happened_filter

STATUS_GROUPS = ["gathering", "draft", "issuing", "issued", "payment_processing", "overdue", "paid", "uncollectible",
                 "voided", "delete", "deleted"]


def _archive_profile(request: HttpRequest, profile: BillingProfile, data: dict[str, Any]) -> str:
    profiles.billing_profile_delete(profile_id=profile.pk)
    return f"The billing profile “{profile.name}” is archived."


@admin.register(BillingProfile)
class BillingProfileAdmin(ObjectActionsMixin, admin.ModelAdmin):
    """Profiles on a typed form, saved through the services behind the API; archived (never deleted) through the
    service's rules: not the default, pinned by no customer, no invoice still open."""

    form = BillingProfileForm
    list_display = ("name", "is_default", "supplier_name", "invoicing_app", "workflow_summary", "pinned", "archived")
    list_filter = ("is_default", happened_filter("deleted_at", "archived"))
    search_fields = ("name", "id")
    fieldsets = (
        (None, {"fields": ("name", "description", "default")}),
        ("Supplier (who invoices)", {"fields": ("supplier_name", "supplier_key", "tax_id", "line1", "line2",
                                                "postal_code", "city", "state", "country", "phone_number")}),
        ("Collection", {"fields": ("alignment", "anchor_interval", "anchor", "collection_interval")}),
        ("Invoicing", {"fields": ("auto_advance", "draft_period", "due_after", "progressive_billing",
                                  "end_proration")}),
        ("Payment and tax", {"fields": ("collection_method", "tax_enabled", "tax_enforced")}),
        ("Apps", {"fields": ("tax_app", "invoicing_app", "payment_app")}),
        ("Metadata", {"fields": ("metadata",)}),
    )
    object_actions = (
        ObjectAction("archive", "Archive", run=_archive_profile, destructive=True,
                     available=lambda profile: profile.deleted_at is None and not profile.is_default,
                     confirm="An archived profile bills no one and cannot be changed; its invoices stay."),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[BillingProfile]:
        return super().get_queryset(request).select_related("invoicing_app").annotate(
            pinned_customers=Count("customer_overrides"))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # archived through the "Archive" action (the service's rules), never deleted

    @admin.display(description="supplier")
    def supplier_name(self, profile: BillingProfile) -> str:
        return (profile.supplier or {}).get("name", "")

    @admin.display(description="workflow")
    def workflow_summary(self, profile: BillingProfile) -> str:
        return workflow_text(profile.workflow)

    @admin.display(description="customers pinned", ordering="pinned_customers")
    def pinned(self, profile: BillingProfile) -> int:
        return profile.pinned_customers  # type: ignore[attr-defined]

    @admin.display(description="archived", ordering="deleted_at")
    def archived(self, profile: BillingProfile) -> str:
        return when(profile.deleted_at) if profile.deleted_at else ""

    def save_model(self, request: HttpRequest, obj: BillingProfile, form: Any, change: bool) -> None:
        data = form.cleaned_data
        settings = {"name": data["name"], "description": data.get("description") or None,
                    "metadata": data["metadata"], "supplier": form.supplier(), "workflow": form.workflow()}
        if change:
            profiles.billing_profile_update(profile_id=obj.pk, default=obj.is_default or data["default"], **settings)
            return
        created = profiles.billing_profile_create(
            default=data["default"], **settings,
            apps=ProfileApps(tax=data["tax_app"].pk, invoicing=data["invoicing_app"].pk, payment=data["payment_app"].pk),
        )
        obj.pk = created.pk  # the admin's redirect and log entry name the created profile


@admin.register(CustomerOverride)
class CustomerOverrideAdmin(admin.ModelAdmin):
    """Which profile bills a customer; saved and removed through the services behind the API."""

    form = CustomerOverrideForm
    list_display = ("customer", "profile_shown", "updated_at")
    list_filter = ("billing_profile",)
    search_fields = ("customer__name", "customer__key", "customer__id")
    list_select_related = ("customer", "billing_profile")
    autocomplete_fields = ("customer",)

    @admin.display(description="billing profile", ordering="billing_profile__name")
    def profile_shown(self, override: CustomerOverride) -> str:
        return override.billing_profile.name if override.billing_profile else "the default profile"

    def save_model(self, request: HttpRequest, obj: CustomerOverride, form: Any, change: bool) -> None:
        profiles.customer_override_upsert(customer_id=obj.customer_id, billing_profile_id=obj.billing_profile_id)
        obj.pk = CustomerOverride.objects.get(customer_id=obj.customer_id).pk

    def delete_model(self, request: HttpRequest, obj: CustomerOverride) -> None:
        profiles.customer_override_delete(customer_id=obj.customer_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[CustomerOverride]) -> None:
        for override in queryset:
            profiles.customer_override_delete(customer_id=override.customer_id)


class StatusGroupFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status_group"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(g, g.replace("_", " ")) for g in STATUS_GROUPS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(Q(status=value) | Q(status__startswith=f"{value}."))


class NeedsActionFilter(admin.SimpleListFilter):
    """The invoices an operator has to look at (the dashboard links here)."""

    title = "needs action"
    parameter_name = "needs"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in selectors.NEEDS_ACTION.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value not in selectors.NEEDS_ACTION:
            return queryset
        return queryset.filter(status__in=selectors.NEEDS_ACTION[value][1])


class OwedFilter(admin.SimpleListFilter):
    """What customers owe: issued and not paid (the dashboard's outstanding and overdue totals link here)."""

    title = "payment"
    parameter_name = "owed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("outstanding", "not paid yet"), ("overdue", "past the due date")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        owed = queryset.filter(status__in=selectors.OWED_STATUSES)
        if self.value() == "outstanding":
            return owed
        if self.value() == "overdue":
            return owed.filter(selectors.overdue_q(timezone.now()))
        return queryset


class EventInline(admin.TabularInline):
    """The invoice's steps in words ("draft: manual approval needed"); rows carry no title of their own."""

    model = InvoiceEvent
    verbose_name, verbose_name_plural = "event", "history"
    fields = ("at", "from_shown", "to_shown", "trigger_shown", "actor", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False
    classes = ("collapse", "om-history")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="when")
    def at(self, event: InvoiceEvent) -> str:
        return when(event.created_at)

    @admin.display(description="from status")
    def from_shown(self, event: InvoiceEvent) -> str:
        return status_words(event.from_status) if event.from_status else "—"

    @admin.display(description="to status")
    def to_shown(self, event: InvoiceEvent) -> str:
        return status_words(event.to_status)

    @admin.display(description="step")
    def trigger_shown(self, event: InvoiceEvent) -> str:
        return event.trigger.replace("_", " ")


# --- invoice actions: each the service the API's action calls ------------------------------------------------

def _can(action: str) -> Any:
    return lambda invoice: action in state.available_actions(invoice)


def _action(action: str, done: str) -> Any:
    def run(request: HttpRequest, invoice: Invoice, data: dict[str, Any]) -> str:
        moved = actions.invoice_action(invoice_id=invoice.pk, action=action, actor=actor(request))
        return moved_message(invoice.number, moved, done)
    return run


def moved_message(number_before: str, moved: Invoice, done: str) -> str:
    """"DRAFT-ACME-1: approved; issued as INV-ACME-1; now paid." (the invoicing app numbers it at issue)."""
    renumbered = f" issued as {moved.number};" if moved.number != number_before else ""
    return f"{number_before}: {done};{renumbered} now {status_words(moved.status)}."


class VoidForm(ActionForm):
    reason = forms.CharField(required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Kept in the invoice's history.")


def _void(request: HttpRequest, invoice: Invoice, data: dict[str, Any]) -> str:
    voided = actions.invoice_void(invoice_id=invoice.pk, reason=data["reason"], actor=actor(request))
    return f"{voided.number} is voided."


def _delete(request: HttpRequest, invoice: Invoice, data: dict[str, Any]) -> str:
    deleted = actions.invoice_delete(invoice_id=invoice.pk, actor=actor(request))
    return f"{deleted.number}: the draft is {status_words(deleted.status)}."


def _invoice_gathering(request: HttpRequest, invoice: Invoice, data: dict[str, Any]) -> HttpResponse | str:
    line_ids = list(invoice.all_lines.filter(parent__isnull=True, deleted_at__isnull=True).values_list("pk", flat=True))
    invoices = drafts.invoice_pending_lines(customer_id=invoice.customer_id, line_ids=line_ids,
                                               actor=actor(request))
    return invoiced_message(request, invoices, format_html("Invoiced the pending lines of {}:", invoice.number))


def _payment_news_possible(trigger: str) -> Any:
    def available(invoice: Invoice) -> bool:
        if not plugins.takes_manual_payments(invoice.invoicing_app):  # Stripe and the sandbox report payments
            return False
        if invoice.status == S.ISSUED:  # payment news first moves an issued invoice to payment processing
            return True
        return state.edge_for(invoice, actions.PAYMENT_TRIGGERS[trigger], timezone.now()) is not None
    return available


def _payment(trigger: str, done: str) -> Any:
    def run(request: HttpRequest, invoice: Invoice, data: dict[str, Any]) -> str:
        moved = actions.invoice_trigger_payment_from_app(invoice_id=invoice.pk, trigger=trigger,
                                                           app_type=invoice.invoicing_app.type)
        return moved_message(invoice.number, moved, done)
    return run


INVOICE_ACTIONS = (
    ObjectAction("invoice_now", "Invoice now", run=_invoice_gathering,
                 available=lambda invoice: invoice.is_gathering and invoice.deleted_at is None,
                 description="Make an invoice now of these pending lines that are due (or of the usage so far, where "
                             "the billing profile bills progressively), instead of waiting for the period close."),
    ObjectAction("approve", "Approve", run=_action("approve", "approved"), available=_can("approve"),
                 description="Approve the draft: it is issued through its invoicing app."),
    ObjectAction("advance", "Advance", run=_action("advance", "advanced"), available=_can("advance"),
                 description="Move the invoice on to its next state now rather than at its scheduled time."),
    ObjectAction("snapshot", "Collect now", run=_action("snapshotQuantities", "quantities taken"),
                 available=_can("snapshotQuantities"),
                 description="Take the usage quantities now instead of waiting for the collection period to end; "
                             "events that arrive later are not on this invoice."),
    ObjectAction("retry", "Retry", run=_action("retry", "retried"), available=_can("retry"),
                 description="Run the failed step again (validation, sync with the invoicing app, issuing)."),
    ObjectAction("mark_paid", "Mark paid", run=_payment("paid", "payment recorded"),
                 available=_payment_news_possible("paid"),
                 description="Record that the customer paid this invoice outside the invoicing app."),
    ObjectAction("mark_uncollectible", "Mark uncollectible",
                 run=_payment("payment_uncollectible", "marked uncollectible"),
                 available=_payment_news_possible("payment_uncollectible"), destructive=True,
                 confirm="The invoice will no longer be collected."),
    ObjectAction("void", "Void", run=_void, form=VoidForm, available=_can("void"), destructive=True,
                 confirm="Voiding cannot be undone: the invoice stays in the history with a total the customer no "
                         "longer owes."),
    ObjectAction("delete", "Delete draft", run=_delete, available=_can("delete"), destructive=True,
                 confirm="The draft is deleted; its subscription lines go back to the customer's pending lines."),
)


def _bulk(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, action: str, done: str) -> None:
    for_each_selected(modeladmin, request, queryset,
                      lambda invoice: actions.invoice_action(invoice_id=invoice.pk, action=action, actor=actor(request)),
                      done=done)


@admin.action(description="Advance selected invoices")
def advance(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _bulk(modeladmin, request, queryset, "advance", "Advanced {}.")


@admin.action(description="Approve selected invoices")
def approve(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _bulk(modeladmin, request, queryset, "approve", "Approved {}.")


@admin.action(description="Retry selected failed invoices")
def retry(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _bulk(modeladmin, request, queryset, "retry", "Retried {}.")


@admin.action(description="Void selected invoices")
def void(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
    confirmation = confirm_bulk(modeladmin, request, queryset, action="void", title="Void invoices",
                                warning="Voiding cannot be undone: these invoices stay in the history with totals "
                                        "their customers no longer owe.")
    if confirmation is not None:
        return confirmation
    for_each_selected(modeladmin, request, queryset,
                      lambda invoice: actions.invoice_void(invoice_id=invoice.pk, reason="voided in the back office",
                                                           actor=actor(request)),
                      done="Voided {}.")
    return None


@admin.register(Invoice)
class InvoiceAdmin(ObjectActionsMixin, admin.ModelAdmin):
    list_display = ("number", "customer_name", "status_shown", "total_shown", "period_shown", "due", "issued")
    list_filter = (NeedsActionFilter, OwedFilter, StatusGroupFilter, "currency", "billing_profile",
                   happened_filter("deleted_at", "deleted"))
    search_fields = ("number", "id", "customer__name", "customer__key")
    list_select_related = ("customer",)
    date_hierarchy = "created_at"
    actions = (advance, approve, retry, void)
    inlines = (EventInline,)
    object_actions = INVOICE_ACTIONS
    change_form_template = "admin/billing/invoice/change_form.html"
    readonly_fields = ("id", "type", "billing_profile", "supplier_shown", "customer_shown", "workflow_shown",
                       "external_ids_shown", "created", "updated")
    fieldsets = (("Details", {"classes": ("collapse",), "fields": readonly_fields}),)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # drafts are deleted through the state machine (the "Delete draft" action), history stays

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invoice]:
        return super().get_queryset(request).select_related("customer", "invoicing_app", "billing_profile")

    # --- the list -------------------------------------------------------------------------------------------

    @admin.display(description="customer", ordering="customer__name")
    def customer_name(self, invoice: Invoice) -> str:
        return invoice.customer.name

    @admin.display(description="status", ordering="status")
    def status_shown(self, invoice: Invoice) -> str:
        return format_html('<span class="om-status om-invoice-{}">{}</span>', invoice.status_prefix,
                           status_words(invoice.status))

    @admin.display(description="total", ordering="total")
    def total_shown(self, invoice: Invoice) -> str:
        if invoice.is_gathering:
            return format_html('<span class="om-num om-empty" title="{}">pending</span>',
                               "calculated with the usage to date on the invoice's page")
        return money(invoice.total, invoice.currency)

    @admin.display(description="period", ordering="period_start")
    def period_shown(self, invoice: Invoice) -> str:
        return period(invoice.period_start, invoice.period_end) if invoice.period_start else "—"

    @admin.display(description="due", ordering="due_at")
    def due(self, invoice: Invoice) -> str:
        return when(invoice.due_at)

    @admin.display(description="issued", ordering="issued_at")
    def issued(self, invoice: Invoice) -> str:
        return when(invoice.issued_at)

    # --- the invoice's page ---------------------------------------------------------------------------------

    @admin.display(description="supplier")
    def supplier_shown(self, invoice: Invoice) -> str:
        return party_text(invoice.supplier)

    @admin.display(description="bill to")
    def customer_shown(self, invoice: Invoice) -> str:
        return party_text(invoice.customer_snapshot)

    @admin.display(description="workflow")
    def workflow_shown(self, invoice: Invoice) -> str:
        return workflow_text(invoice.workflow)

    @admin.display(description="ids in other systems")
    def external_ids_shown(self, invoice: Invoice) -> str:
        return external_ids_html(invoice)

    @admin.display(description="created")
    def created(self, invoice: Invoice) -> str:
        return when(invoice.created_at)

    @admin.display(description="updated")
    def updated(self, invoice: Invoice) -> str:
        return when(invoice.updated_at)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        invoice = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if invoice is not None:
            rows = invoice_rows(invoice)  # first: a gathering invoice's totals are calculated to date here
            context.update(
                invoice=invoice, line_rows=rows, totals=total_rows(invoice), status=status_words(invoice.status),
                dates=invoice_dates(invoice), grand_total=money(invoice.total, invoice.currency),
                external_ids=external_ids_html(invoice),
                issues=invoice.validation_issues or [], title=f"Invoice {invoice.number}", subtitle=None,
                customer_url=reverse("admin:customers_customer_change", args=[invoice.customer_id]),
                print_url=reverse("admin:billing_invoice_print", args=[invoice.pk]),
                download_url=reverse("admin:billing_invoice_download", args=[invoice.pk]),
                show_save=False, show_save_and_continue=False,  # nothing is edited by hand: actions only
            )
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self) -> list:
        extra = [
            path("<str:invoice_id>/print/", self.admin_site.admin_view(self.print_view), name="billing_invoice_print"),
            path("<str:invoice_id>/download/", self.admin_site.admin_view(self.download_view),
                 name="billing_invoice_download"),
        ]
        return extra + super().get_urls()

    def _viewable(self, request: HttpRequest, invoice_id: str) -> Invoice:
        invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        return invoice

    def print_view(self, request: HttpRequest, invoice_id: str) -> HttpResponse:
        """The invoice as the customer reads it: parties with their addresses, dates in the operator's zone, lines
        with their detailed lines, totals as money."""
        invoice = self._viewable(request, invoice_id)
        rows = invoice_rows(invoice)  # first: a gathering invoice's totals are calculated to date here
        context = {"invoice": invoice, "rows": rows, "totals": total_rows(invoice), "status": status_words(invoice.status),
                   "supplier": party_text(invoice.supplier, with_key=False),
                   "bill_to": party_text(invoice.customer_snapshot, with_key=False)}
        return TemplateResponse(request, "billing/invoice_print.html", context)

    def download_view(self, request: HttpRequest, invoice_id: str) -> HttpResponse:
        """The invoice's lines as CSV (one row per line and detailed line), for a spreadsheet or an accounting
        import; amounts in the currency's precision, unformatted."""
        invoice = self._viewable(request, invoice_id)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{invoice.number}.csv"'
        write_lines_csv(response, invoice, invoice_rows(invoice))
        return response
