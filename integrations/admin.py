"""Back office for installed apps, customers' app data, and the Stripe sync and webhook logs.

Secrets never appear: the admin shows `masked_api_key` only; a new Stripe key can be typed in (write-only) and goes
through the same validation as the API (`stripe_app_update_api_key`).
"""

from django import forms
from django.contrib import admin, messages

from billing.models import App
from integrations.models import AppType, CustomerAppData, StripeInvoiceSync, StripeWebhookEvent
from integrations.services import app_uninstall
from integrations.stripe.services import stripe_app_update_api_key
from openmeter_site.core.errors import DomainError


class AppForm(forms.ModelForm):
    new_secret_api_key = forms.CharField(
        label="New Stripe secret key",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stripe apps only. Validated with Stripe; stored encrypted; never shown again.",
    )
    new_webhook_secret = forms.RegexField(
        regex=r"^whsec_[A-Za-z0-9_\-]+$",
        label="New webhook signing secret",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=(
            "Stripe apps only, when you registered the webhook endpoint in Stripe yourself "
            "(…/api/v1/apps/<id>/stripe/webhook): paste its whsec_… signing secret. Stored encrypted."
        ),
    )

    class Meta:
        model = App
        fields = ["name", "description", "metadata", "enable_draft_sync_hook", "enable_issuing_sync_hook"]


class DeletedFilter(admin.SimpleListFilter):
    title = "installed"
    parameter_name = "installed"

    def lookups(self, request, model_admin):
        return [("yes", "Installed"), ("no", "Uninstalled")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    form = AppForm
    list_display = ["name", "type", "status", "stripe_account_id", "masked_api_key", "livemode", "created_at", "deleted_at"]
    list_filter = ["type", "status", "livemode", DeletedFilter]
    search_fields = ["id", "name", "stripe_account_id"]
    readonly_fields = [
        "id", "type", "status", "stripe_account_id", "livemode", "masked_api_key", "stripe_webhook_endpoint_id",
        "created_at", "updated_at", "deleted_at",
    ]
    fields = [
        "id", "type", "name", "description", "metadata", "status", "stripe_account_id", "livemode", "masked_api_key",
        "new_secret_api_key", "new_webhook_secret", "stripe_webhook_endpoint_id", "enable_draft_sync_hook",
        "enable_issuing_sync_hook", "created_at", "updated_at", "deleted_at",
    ]
    actions = ["uninstall"]

    def has_add_permission(self, request):
        return False  # apps are installed from the marketplace (API), which validates credentials

    def has_delete_permission(self, request, obj=None):
        return False  # uninstalling is a soft delete with side effects in Stripe: use the action

    def save_model(self, request, obj, form, change):
        new_webhook_secret = form.cleaned_data.get("new_webhook_secret")
        if new_webhook_secret and obj.type == AppType.STRIPE:
            obj.webhook_secret = new_webhook_secret
            messages.success(request, "Webhook signing secret replaced.")
        super().save_model(request, obj, form, change)
        new_key = form.cleaned_data.get("new_secret_api_key")
        if not new_key:
            return
        if obj.type != AppType.STRIPE:
            messages.error(request, "Only Stripe apps have an API key.")
            return
        try:
            stripe_app_update_api_key(app_id=obj.id, api_key=new_key)
        except DomainError as exc:
            messages.error(request, f"The Stripe key was not changed: {exc.detail}")
        else:
            messages.success(request, "Stripe key replaced.")

    @admin.action(description="Uninstall selected apps")
    def uninstall(self, request, queryset):
        done = 0
        for app in queryset.filter(deleted_at__isnull=True):
            try:
                app_uninstall(app_id=app.id)
                done += 1
            except DomainError as exc:
                messages.error(request, f"{app}: {exc.detail}")
        self.message_user(request, f"Uninstalled {done} app(s).")


@admin.register(CustomerAppData)
class CustomerAppDataAdmin(admin.ModelAdmin):
    list_display = ["customer", "app", "stripe_customer_id", "stripe_default_payment_method_id", "updated_at"]
    list_filter = ["app__type", "app"]
    list_select_related = ["customer", "app"]
    search_fields = ["customer__key", "customer__name", "customer__id", "stripe_customer_id"]
    raw_id_fields = ["customer", "app"]
    readonly_fields = ["id", "created_at", "updated_at"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Logs written by the sync and the webhook handler: history, not editable."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StripeInvoiceSync)
class StripeInvoiceSyncAdmin(ReadOnlyAdmin):
    actions = ["retry_sync"]
    list_display = [
        "invoice_id", "app", "stripe_invoice_id", "stripe_invoice_number", "draft_state", "finalize_state",
        "deleted_in_stripe", "updated_at",
    ]
    list_filter = ["draft_state", "finalize_state", "deleted_in_stripe", "app"]
    list_select_related = ["app"]
    search_fields = ["invoice_id", "stripe_invoice_id", "stripe_customer_id", "stripe_invoice_number"]

    @admin.action(description="Retry the invoices' failed sync now")
    def retry_sync(self, request, queryset):
        from billing.services import invoice_retry

        retried = 0
        for row in queryset:
            try:
                invoice_retry(invoice_id=row.invoice_id, actor=f"admin:{request.user}")
                retried += 1
            except DomainError as exc:
                messages.warning(request, f"invoice {row.invoice_id}: {exc.detail}")
        self.message_user(request, f"Retried {retried} invoice(s).")


@admin.register(StripeWebhookEvent)
class StripeWebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "app", "stripe_object_id", "outcome", "created_at"]
    list_filter = ["type", "app"]
    list_select_related = ["app"]
    search_fields = ["event_id", "stripe_object_id"]
    date_hierarchy = "created_at"
