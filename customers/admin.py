"""Back office for customers: a typed form (address fields, metadata rows, currency, subject keys) saved through
`customers.services`, so the admin refuses what the API refuses; deleting goes through the service too, after a
confirmation. The customer's whole story (subscriptions, balances, invoices) is the hub in `backoffice`."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.safestring import SafeString

from customers.models import Customer
from customers.services import CustomerInput, customer_check, customer_create, customer_delete, customer_update
from openmeter_site.admin_ui.actions import (
    ObjectAction,
    ObjectActionsMixin,
    ServiceSaveMixin,
    confirm_bulk,
    for_each_selected,
)
from openmeter_site.admin_ui.display import when
from openmeter_site.admin_ui.filters import happened_filter
from openmeter_site.admin_ui.forms import CountryField, CurrencyField, DescriptionField, KeyValueField, country_choices
from openmeter_site.core.errors import DomainError

ADDRESS_FIELDS = {  # form field → billingAddress key (the spec's Address)
    "address_line1": "line1", "address_line2": "line2", "address_city": "city", "address_postal_code": "postalCode",
    "address_state": "state", "address_country": "country", "address_phone_number": "phoneNumber",
}
SERVICE_FIELDS = {"key": "key", "usageAttribution.subjectKeys": "subject_keys"}  # service error field → form field


class CustomerForm(forms.ModelForm):
    subject_keys = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text="Usage attribution: the event subjects billed to this customer, one per line. Events whose subject "
                  "is the customer's key count too.")
    currency = CurrencyField(required=False, help_text="ISO 4217; the currency the customer is invoiced in.")
    address_line1 = forms.CharField(label="Address line 1", required=False)
    address_line2 = forms.CharField(label="Address line 2", required=False)
    address_city = forms.CharField(label="City", required=False)
    address_postal_code = forms.CharField(label="Postal code", required=False)
    address_state = forms.CharField(label="State / region", required=False)
    address_country = CountryField(label="Country")
    address_phone_number = forms.CharField(label="Phone number", required=False)
    description = DescriptionField()
    metadata = KeyValueField()

    class Meta:
        model = Customer
        fields = ["name", "key", "description", "primary_email"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        customer = self.instance
        if customer.pk:
            self.initial["subject_keys"] = "\n".join(s.subject_key for s in customer.subjects.all() if s.deleted_at is None)
            self.initial["currency"] = customer.currency or ""
            self.initial["metadata"] = customer.metadata or {}
            address = customer.billing_address or {}
            for name, key in ADDRESS_FIELDS.items():
                self.initial[name] = address.get(key) or ""
            country = address.get("country")
            if country and country not in dict(self.fields["address_country"].choices):  # type: ignore[attr-defined]
                self.fields["address_country"].choices = [*country_choices(), (country, country)]  # type: ignore[attr-defined]

    def clean_subject_keys(self) -> list[str]:
        keys = [line.strip() for line in self.cleaned_data["subject_keys"].splitlines() if line.strip()]
        too_long = [k for k in keys if len(k) > 512]
        if too_long:
            raise forms.ValidationError(f"A subject key is at most 512 characters: {too_long[0][:40]}…")
        return list(dict.fromkeys(keys))

    def customer_input(self) -> CustomerInput:
        data = self.cleaned_data
        address = {key: data[name] for name, key in ADDRESS_FIELDS.items() if data.get(name)}
        return CustomerInput(
            name=data["name"], key=data.get("key") or None, description=data.get("description") or None,
            primary_email=data.get("primary_email") or None, currency=data.get("currency") or None,
            billing_address=address or None, metadata=data.get("metadata") or {}, subject_keys=data["subject_keys"],
        )

    def validate_unique(self) -> None:
        """Uniqueness of keys and subjects is the service's rule, checked in clean() with its own message."""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        if not data.get("key") and not data.get("subject_keys"):
            raise forms.ValidationError("Give the customer a key or at least one subject key: usage is attributed "
                                        "through them.")
        try:
            customer_check(data=self.customer_input(), customer=self.instance if self.instance.pk else None)
        except DomainError as exc:
            field = SERVICE_FIELDS.get(exc.extensions.get("field", ""))
            self.add_error(field, exc.detail)
        return data


def _delete_customer(request: HttpRequest, customer: Customer, data: dict[str, Any]) -> str:
    customer_delete(customer=customer)
    return f"Customer {customer} is deleted: its subject keys are released and its entitlements have ended."


@admin.register(Customer)
class CustomerAdmin(ServiceSaveMixin, ObjectActionsMixin, admin.ModelAdmin):
    form = CustomerForm
    list_display = ["name", "key", "primary_email", "currency", "subject_list", "created", "deleted"]
    list_filter = ["currency", happened_filter("deleted_at", "deleted")]
    search_fields = ["name", "key", "primary_email", "subjects__subject_key"]
    readonly_fields = ["id", "created_at", "updated_at", "deleted_at"]
    fieldsets = [
        (None, {"fields": ["name", "key", "primary_email", "currency", "subject_keys", "description"]}),
        ("Billing address", {"fields": ["address_line1", "address_line2", "address_postal_code", "address_city",
                                        "address_state", "address_country", "address_phone_number"]}),
        ("Metadata", {"fields": ["metadata"]}),
        ("Record", {"fields": ["id", "created_at", "updated_at", "deleted_at"], "classes": ["collapse"]}),
    ]
    actions = ["soft_delete"]
    object_actions = (
        ObjectAction("delete", "Delete customer", run=_delete_customer, destructive=True,
                     confirm="Deleting a customer releases its subject keys and ends its entitlements now. A customer "
                             "with an active subscription cannot be deleted: cancel the subscription first.",
                     available=lambda customer: customer.deleted_at is None),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        return super().get_queryset(request).prefetch_related("subjects")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # customers are soft-deleted through the service (the action), which also ends entitlements

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Customer) -> SafeString:
        return when(obj.created_at)

    @admin.display(description="deleted", ordering="deleted_at")
    def deleted(self, obj: Customer) -> SafeString:
        return when(obj.deleted_at)

    @admin.display(description="subjects")
    def subject_list(self, obj: Customer) -> str:
        return ", ".join(s.subject_key for s in obj.subjects.all() if s.deleted_at is None)

    def save_model(self, request: HttpRequest, obj: Customer, form: CustomerForm, change: bool) -> None:
        data = form.customer_input()
        if change:
            customer_update(customer=obj, data=data)
        else:
            obj.pk = customer_create(data=data).pk
            obj._state.adding = False

    def response_post_save_add(self, request: HttpRequest, obj: Customer) -> HttpResponseRedirect:
        """A new customer opens on its own page, where it is subscribed and credited next."""
        return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[obj.pk]))

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        """Subject keys were written by the service with the customer."""

    @admin.action(description="Delete selected customers (soft delete; ends their entitlements)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse | None:
        confirmation = confirm_bulk(self, request, queryset, action="soft_delete", title="Delete customers",
                                    warning="Deleting customers releases their subject keys and ends their "
                                            "entitlements now. Customers with an active subscription are kept.")
        if confirmation is not None:
            return confirmation
        for_each_selected(self, request, queryset.filter(deleted_at__isnull=True),
                          lambda customer: customer_delete(customer=customer), done="Deleted {}.")
        return None
