"""Back office for the apps (Stripe, sandbox, custom invoicing): installed from the marketplace, edited, their Stripe key
and webhook secret replaced, uninstalled; customers' app data (which Stripe customer pays for whom); the Stripe sync
and webhook logs. Every write goes through the service behind the API, and the ones that call Stripe run outside any
database transaction.

Secrets never appear: pages show the masked key only; a new key or webhook secret is typed into a password field,
validated as the API validates it, stored encrypted and never shown again.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from billing.models import App
from customers.models import Customer
from customers.services import customer_get
from integrations.marketplace import LISTINGS, InstallMethod
from integrations.models import AppType, CustomerAppData, StripeInvoiceSync, StripeWebhookEvent
from integrations.selectors import app_list_qs
from integrations.services import (
    AppUpdateInput,
    CustomerAppDataInput,
    app_install,
    app_uninstall,
    app_update,
    customer_app_data_delete,
    customer_app_data_upsert,
)
from integrations.stripe.invoicing import stripe_dashboard_url
from integrations.stripe.services import (
    stripe_app_install,
    stripe_app_update_api_key,
    stripe_app_webhook_secret_replace,
)
from openmeter_site.admin_ui.actions import (
    ActionForm,
    ObjectAction,
    ObjectActionsMixin,
    ServiceSaveMixin,
    actor,
    confirm_bulk,
    service_form_page,
)
from openmeter_site.admin_ui.display import when
from openmeter_site.admin_ui.forms import DescriptionField, FieldsetsForm, KeyValueField
from openmeter_site.core.errors import DomainError
from openmeter_site.core.lengths import column_length

SECRET_INPUT = forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})
# the API's field a service's error names → the form's field
INSTALL_FIELDS = (("apiKey", "api_key"),)
LINK_FIELDS = (("stripeCustomerId", "stripe_customer_id"), ("stripeDefaultPaymentMethodId", "payment_method_id"))


class TimesMixin(admin.ModelAdmin):
    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Any) -> SafeString:
        return when(obj.created_at)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj: Any) -> SafeString:
        return when(obj.updated_at)


# --- apps ------------------------------------------------------------------------------------------------------------


class AppForm(forms.ModelForm):
    """Name, description, metadata and (custom invoicing) the sync hooks: the API's AppReplaceUpdate."""

    name = forms.CharField(max_length=column_length(App, "name"))
    description = DescriptionField()
    metadata = KeyValueField()

    class Meta:
        model = App
        fields = ["name", "description", "metadata", "enable_draft_sync_hook", "enable_issuing_sync_hook"]
        labels = {"enable_draft_sync_hook": "Wait for the draft sync hook",
                  "enable_issuing_sync_hook": "Wait for the issuing sync hook"}
        help_texts = {"enable_draft_sync_hook": "Drafts wait in draft: syncing until your system calls back.",
                      "enable_issuing_sync_hook": "Issuing waits in issuing: syncing until your system calls back."}


INSTALLABLE = [(t, f"{listing.name}: {listing.description}") for t, listing in LISTINGS.items()]


class InstallForm(FieldsetsForm):
    """The marketplace: an app type and what its install method needs (Stripe: a secret key)."""

    show_when = {"api_key": ("type", (AppType.STRIPE,)), "create_billing_profile": ("type", (AppType.STRIPE,))}

    type = forms.ChoiceField(choices=INSTALLABLE, widget=forms.RadioSelect, label="App")
    name = forms.CharField(max_length=column_length(App, "name"), required=False,
                           help_text="Empty: the listing's name.")
    api_key = forms.CharField(label="Stripe secret key", required=False, widget=SECRET_INPUT, max_length=255,
                              help_text="sk_… or rk_…; checked with Stripe, stored encrypted, never shown again.")
    create_billing_profile = forms.BooleanField(
        required=False, initial=True, label="Create a billing profile on it",
        help_text="Stripe: a billing profile invoicing through the app (the default one while the default invoices "
                  "through the sandbox).")

    def clean(self) -> dict[str, Any]:
        super().clean()
        if self.cleaned_data.get("type") == AppType.STRIPE and not self.cleaned_data.get("api_key"):
            self.add_error("api_key", "Stripe is installed with a secret key.")
        return self.cleaned_data


def _install(data: dict[str, Any]) -> tuple[str, str]:
    if InstallMethod.API_KEY in LISTINGS[data["type"]].install_methods:
        app = stripe_app_install(api_key=data["api_key"], name=data["name"] or None,
                                 create_billing_profile=data["create_billing_profile"]).app
    else:
        app = app_install(app_type=data["type"], name=data["name"] or None).app
    return f"{app.name} is installed.", reverse("admin:billing_app_change", args=[app.pk])


class StripeKeyForm(ActionForm):
    api_key = forms.CharField(label="New Stripe secret key", widget=SECRET_INPUT, max_length=255,
                              help_text="A key of the same Stripe account; checked with Stripe before it replaces "
                                        "the current one.")


def _replace_key(request: HttpRequest, app: App, data: dict[str, Any]) -> str:
    app = stripe_app_update_api_key(app_id=app.pk, api_key=data["api_key"])
    return f"The Stripe key of {app.name} is replaced ({app.masked_api_key})."


class WebhookSecretForm(ActionForm):
    webhook_secret = forms.CharField(label="Webhook signing secret", widget=SECRET_INPUT, max_length=210,
                                     help_text="whsec_…, from the webhook endpoint you registered in Stripe for "
                                               "…/api/v1/apps/<this app's id>/stripe/webhook.")


def _replace_webhook_secret(request: HttpRequest, app: App, data: dict[str, Any]) -> str:
    stripe_app_webhook_secret_replace(app_id=app.pk, webhook_secret=data["webhook_secret"])
    return f"{app.name} accepts Stripe events signed with the new secret from now on."


def _uninstall(request: HttpRequest, app: App, data: dict[str, Any]) -> str:
    app_uninstall(app_id=app.pk)
    return f"{app.name} is uninstalled."


def _is_live_stripe(app: App) -> bool:
    return app.type == AppType.STRIPE and app.deleted_at is None


def app_type_filter(field: str) -> type[admin.SimpleListFilter]:
    """The app types by name ("Custom Invoicing", not `custom_invoicing`)."""

    class AppTypeFilter(admin.SimpleListFilter):
        title = "app type"
        parameter_name = field

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return list(AppType.choices)

        def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    return AppTypeFilter


class DeletedFilter(admin.SimpleListFilter):
    title = "installed"
    parameter_name = "installed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Installed"), ("no", "Uninstalled")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


@admin.register(App)
class AppAdmin(ServiceSaveMixin, ObjectActionsMixin, TimesMixin, admin.ModelAdmin):
    form = AppForm
    list_display = ["name", "kind", "status", "stripe_account", "masked_api_key", "livemode", "created", "uninstalled"]
    list_filter = [app_type_filter("type"), "status", "livemode", DeletedFilter]
    search_fields = ["id", "name", "stripe_account_id"]
    actions = ["uninstall"]
    object_actions = (
        ObjectAction("stripe_key", "Replace Stripe key", run=_replace_key, form=StripeKeyForm, available=_is_live_stripe,
                     description="Rotate the app's Stripe secret key (e.g. after rolling it in Stripe).",
                     error_fields=(("secretAPIKey", "api_key"),)),
        ObjectAction("webhook_secret", "Replace webhook secret", run=_replace_webhook_secret, form=WebhookSecretForm,
                     available=_is_live_stripe, error_fields=(("webhookSecret", "webhook_secret"),),
                     description="Only when you registered the app's webhook endpoint in Stripe yourself."),
        ObjectAction("uninstall", "Uninstall", run=_uninstall, destructive=True,
                     available=lambda app: app.deleted_at is None,
                     confirm="The app's customer data is dropped and (Stripe) its webhook endpoint is removed from "
                             "Stripe. An app a billing profile uses cannot be uninstalled: move the profile first."),
    )

    def get_fields(self, request: HttpRequest, obj: App | None = None) -> list[Any]:
        fields = ["id", "kind", "status", "name", "description", "metadata"]
        if obj is not None and obj.type == AppType.STRIPE:
            fields += ["stripe_account", "livemode", "masked_api_key", "stripe_webhook_endpoint_id"]
        if obj is not None and obj.type == AppType.CUSTOM_INVOICING:
            fields += ["enable_draft_sync_hook", "enable_issuing_sync_hook"]
        return [*fields, "created", "updated", "uninstalled"]

    readonly_fields = ("id", "kind", "status", "stripe_account", "livemode", "masked_api_key", "stripe_webhook_endpoint_id",
                       "created", "updated", "uninstalled")

    def has_change_permission(self, request: HttpRequest, obj: App | None = None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or obj.deleted_at is None)

    def has_object_action_permission(self, request: HttpRequest, obj: Any) -> bool:
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # uninstalled through the service (it removes the webhook endpoint from Stripe)

    @admin.display(description="type", ordering="type")
    def kind(self, app: App) -> str:
        return AppType(app.type).label if app.type in AppType.values else app.type

    @admin.display(description="Stripe account", ordering="stripe_account_id")
    def stripe_account(self, app: App) -> str:
        if not app.stripe_account_id:
            return "—"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', stripe_dashboard_url(app),
                           app.stripe_account_id)

    @admin.display(description="uninstalled", ordering="deleted_at")
    def uninstalled(self, app: App) -> SafeString:
        return when(app.deleted_at)

    def save_model(self, request: HttpRequest, obj: App, form: AppForm, change: bool) -> None:
        d = form.cleaned_data
        app_update(app_id=obj.pk, data=AppUpdateInput(
            type=obj.type, name=d["name"], description=d["description"] or None, metadata=d["metadata"],
            enable_draft_sync_hook=d.get("enable_draft_sync_hook"),
            enable_issuing_sync_hook=d.get("enable_issuing_sync_hook"),
        ))

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
                 ) -> HttpResponse:
        """Install from the marketplace; outside the admin's transaction, as installing Stripe asks Stripe."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        return service_form_page(self, request, form=InstallForm(request.POST if request.method == "POST" else None),
                                 run=_install, title="Install an app", submit="Install", error_fields=INSTALL_FIELDS,
                                 cancel_url=reverse("admin:billing_app_changelist"))

    @admin.action(description="Uninstall selected apps")
    def uninstall(self, request: HttpRequest, queryset: QuerySet[App]) -> HttpResponse | None:
        live = queryset.filter(deleted_at__isnull=True)
        confirmation = confirm_bulk(self, request, live, action="uninstall", title="Uninstall apps",
                                    warning="The apps' customer data is dropped and Stripe webhook endpoints are "
                                            "removed from Stripe.")
        if confirmation is not None:
            return confirmation
        done = 0
        for app in live:
            try:
                app_uninstall(app_id=app.pk)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{app}: {exc.detail}", messages.ERROR)
        self.message_user(request, f"Uninstalled {done} app(s).")
        return None


# --- customers' app data -----------------------------------------------------------------------------------------------


class CustomerAppDataForm(FieldsetsForm):
    """Which Stripe customer (and default payment method) pays for a customer: the API's customer app data."""

    customer = forms.CharField(max_length=column_length(Customer, "key"), help_text="Its key or id.")
    app = forms.ModelChoiceField(queryset=app_list_qs(app_type=AppType.STRIPE), empty_label=None)
    stripe_customer_id = forms.RegexField(r"^cus_[A-Za-z0-9]+$", label="Stripe customer",
                                          max_length=column_length(CustomerAppData, "stripe_customer_id"),
                                          help_text="cus_…; checked with Stripe.")
    payment_method_id = forms.RegexField(r"^(pm|card|src)_[A-Za-z0-9]+$", required=False,
                                         label="Default payment method",
                                         max_length=column_length(CustomerAppData, "stripe_default_payment_method_id"),
                                         help_text="pm_…, attached to that Stripe customer. Empty: Stripe's default.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["app"].queryset = app_list_qs(app_type=AppType.STRIPE)  # type: ignore[attr-defined]

    def clean_customer(self) -> Customer:
        try:
            return customer_get(id_or_key=self.cleaned_data["customer"].strip())
        except DomainError as exc:
            raise forms.ValidationError(exc.detail) from exc


def _link(data: dict[str, Any]) -> tuple[str, str]:
    item = CustomerAppDataInput(type=AppType.STRIPE, app_id=data["app"].pk, stripe_customer_id=data["stripe_customer_id"],
                                stripe_default_payment_method_id=data["payment_method_id"] or None)
    [view] = customer_app_data_upsert(customer=data["customer"], items=[item])
    assert view.row is not None
    return (f"{data['customer']} is paid for by Stripe customer {data['stripe_customer_id']}.",
            reverse("admin:integrations_customerappdata_change", args=[view.row.pk]))


def _unlink(request: HttpRequest, row: CustomerAppData, data: dict[str, Any]) -> str:
    customer_app_data_delete(customer=row.customer, app_id=row.app_id)
    return f"{row.customer} is no longer linked to {row.app}."


@admin.register(CustomerAppData)
class CustomerAppDataAdmin(ObjectActionsMixin, TimesMixin, admin.ModelAdmin):
    list_display = ["customer", "app", "stripe_customer", "stripe_default_payment_method_id", "updated"]
    list_filter = [app_type_filter("app__type"), "app"]
    list_select_related = ["customer", "app"]
    search_fields = ["customer__key", "customer__name", "customer__id", "stripe_customer_id"]
    fields = ("customer", "app", "stripe_customer", "stripe_default_payment_method_id", "metadata", "created",
              "updated")
    readonly_fields = fields
    object_actions = (
        ObjectAction("unlink", "Unlink", run=_unlink, destructive=True,
                     confirm="The customer's invoices no longer go to this Stripe customer; the next one makes or "
                             "finds a Stripe customer again."),
    )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # set again through "Add" (checked with Stripe), removed through "Unlink"

    def has_object_action_permission(self, request: HttpRequest, obj: Any) -> bool:
        return request.user.has_perm("integrations.delete_customerappdata")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Stripe customer", ordering="stripe_customer_id")
    def stripe_customer(self, row: CustomerAppData) -> str:
        if not row.stripe_customer_id:
            return "—"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>',
                           stripe_dashboard_url(row.app, f"customers/{row.stripe_customer_id}"), row.stripe_customer_id)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
                 ) -> HttpResponse:
        """Link a customer to a Stripe customer; outside the admin's transaction, as the ids are checked with Stripe."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CustomerAppDataForm(request.POST if request.method == "POST" else None)
        return service_form_page(self, request, form=form, run=_link, title="Link a customer to Stripe", submit="Link",
                                 error_fields=LINK_FIELDS,
                                 cancel_url=reverse("admin:integrations_customerappdata_changelist"))


# --- logs ----------------------------------------------------------------------------------------------------------


class ReadOnlyAdmin(TimesMixin, admin.ModelAdmin):
    """Logs written by the sync and the webhook handler: history, not editable."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StripeInvoiceSync)
class StripeInvoiceSyncAdmin(ReadOnlyAdmin):
    actions = ["retry_sync"]
    list_display = ["invoice_link", "app", "stripe_invoice_id", "stripe_invoice_number", "draft_state",
                    "finalize_state", "deleted_in_stripe", "updated"]
    list_filter = ["draft_state", "finalize_state", "deleted_in_stripe", "app"]
    list_select_related = ["app"]
    search_fields = ["invoice_id", "stripe_invoice_id", "stripe_customer_id", "stripe_invoice_number"]

    @admin.display(description="invoice", ordering="invoice_id")
    def invoice_link(self, row: StripeInvoiceSync) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:billing_invoice_change", args=[row.invoice_id]),
                           row.invoice_id)

    @admin.action(description="Retry the invoices' failed sync now")
    def retry_sync(self, request: HttpRequest, queryset: QuerySet[StripeInvoiceSync]) -> None:
        from billing.services import invoice_retry

        retried = 0
        for row in queryset:
            try:
                invoice_retry(invoice_id=row.invoice_id, actor=actor(request))
                retried += 1
            except DomainError as exc:
                self.message_user(request, f"invoice {row.invoice_id}: {exc.detail}", messages.WARNING)
        self.message_user(request, f"Retried {retried} invoice(s).")


@admin.register(StripeWebhookEvent)
class StripeWebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "app", "stripe_object_id", "outcome", "created"]
    list_filter = ["type", "app"]
    list_select_related = ["app"]
    search_fields = ["event_id", "stripe_object_id"]
    date_hierarchy = "created_at"
