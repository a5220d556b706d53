"""Typed forms for billing profiles and customer overrides: the supplier's address as fields, the workflow's
durations as a number and a unit, switches for the yes/no settings, metadata as rows. Each form builds the
documents the API takes and checks them with the same service validators (`supplier_validate`,
`workflow_validate`); a refusal lands on the field it names."""

import datetime as dt
from typing import Any

from django import forms

from billing.models import App, BillingProfile, CustomerOverride
from billing.services.profiles import live_profiles, supplier_validate
from billing.services.workflow import DEFAULT_WORKFLOW, workflow_validate
from openmeter_site.admin_ui.forms import CountryField, DescriptionField, DurationField, KeyValueField
from openmeter_site.core.errors import DomainError
from openmeter_site.core.time import format_rfc3339

SUPPLIER_ADDRESS = {  # form field → Address key (the spec's)
    "line1": "line1", "line2": "line2", "city": "city", "postal_code": "postalCode", "state": "state",
    "country": "country", "phone_number": "phoneNumber",
}
# a validator's field → the form field that shows its message
SERVICE_FIELDS = {
    "supplier.name": "supplier_name", "supplier.key": "supplier_key", "supplier.taxId": "tax_id",
    **{f"supplier.addresses[0].{key}": name for name, key in SUPPLIER_ADDRESS.items()},
    "workflow.collection.alignment": "alignment", "workflow.collection.interval": "collection_interval",
    "workflow.invoicing.autoAdvance": "auto_advance", "workflow.invoicing.draftPeriod": "draft_period",
    "workflow.invoicing.dueAfter": "due_after", "workflow.invoicing.progressiveBilling": "progressive_billing",
    "workflow.invoicing.subscriptionEndProrationMode": "end_proration",
    "workflow.payment.collectionMethod": "collection_method",
    "workflow.tax.enabled": "tax_enabled", "workflow.tax.enforced": "tax_enforced",
}
ANCHOR_INTERVALS = [("DAY", "every day"), ("WEEK", "every week"), ("MONTH", "every month"), ("YEAR", "every year")]


def app_choices() -> Any:
    return App.objects.filter(deleted_at__isnull=True).order_by("created_at")


class BillingProfileForm(forms.ModelForm):
    default = forms.BooleanField(required=False, label="Default profile",
                                 help_text="Bills every customer without a profile of its own.")
    supplier_name = forms.CharField(label="Name", max_length=256)
    supplier_key = forms.CharField(label="Key", required=False, max_length=256)
    tax_id = forms.CharField(label="Tax ID", required=False, max_length=32)
    line1 = forms.CharField(label="Address line 1", required=False)
    line2 = forms.CharField(label="Address line 2", required=False)
    city = forms.CharField(required=False)
    postal_code = forms.CharField(label="Postal code", required=False)
    state = forms.CharField(label="State / region", required=False)
    country = CountryField()
    phone_number = forms.CharField(label="Phone number", required=False)

    alignment = forms.ChoiceField(
        label="Collect", initial="subscription",
        choices=[("subscription", "per subscription billing period"), ("anchored", "on a fixed cycle (anchored)")])
    anchor_interval = forms.ChoiceField(label="Cycle", choices=ANCHOR_INTERVALS, initial="MONTH", required=False)
    anchor = forms.DateTimeField(label="Cycle starts", required=False,
                                 help_text="Anchored cycles only, e.g. the 1st of a month at 00:00 (your time zone).")
    collection_interval = DurationField(label="Wait for late events",
                                        help_text="Usage is collected this long after a period ends.")
    auto_advance = forms.BooleanField(label="Issue automatically", required=False,
                                      help_text="Off: every draft waits for an operator's approval.")
    draft_period = DurationField(label="Draft period", help_text="How long a draft can be reviewed before it is "
                                                                 "issued automatically.")
    due_after = DurationField(label="Due after", help_text="Payment term, counted from the issue date.")
    progressive_billing = forms.BooleanField(label="Progressive billing", required=False,
                                             help_text="Invoice now may bill the usage of periods still running.")
    end_proration = forms.ChoiceField(
        label="When a subscription ends mid-period",
        choices=[("bill_actual_period", "bill the part of the period used"),
                 ("bill_full_period", "bill the full period")])
    collection_method = forms.ChoiceField(
        label="Payment", choices=[("charge_automatically", "charge the customer's payment method"),
                                  ("send_invoice", "send the invoice for payment")])
    tax_enabled = forms.BooleanField(label="Calculate tax", required=False)
    tax_enforced = forms.BooleanField(label="Tax required", required=False,
                                      help_text="Refuse to issue an invoice whose tax could not be calculated.")

    tax_app = forms.ModelChoiceField(queryset=app_choices(), label="Tax app")
    invoicing_app = forms.ModelChoiceField(queryset=app_choices(), label="Invoicing app")
    payment_app = forms.ModelChoiceField(queryset=app_choices(), label="Payment app")
    description = DescriptionField()
    metadata = KeyValueField()

    class Meta:
        model = BillingProfile
        fields = ["name", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("tax_app", "invoicing_app", "payment_app"):
            self.fields[name].queryset = app_choices()  # type: ignore[attr-defined]
        profile = self.instance
        if profile._state.adding:  # (a new profile has its ULID already)
            self.initial.update(self._settings_initial(DEFAULT_WORKFLOW, {}))
            return
        self.initial.update(self._settings_initial(profile.workflow, profile.supplier))
        self.initial.update(default=profile.is_default, metadata=profile.metadata or {})
        for name in ("tax_app", "invoicing_app", "payment_app"):  # chosen when the profile is created
            self.fields[name].disabled = True
            self.initial[name] = getattr(profile, f"{name}_id")
        if profile.is_default:  # one profile is always the default: make another one the default instead
            self.fields["default"].disabled = True
            self.fields["default"].help_text = "To change it, make another profile the default."

    @staticmethod
    def _settings_initial(stored: Any, supplier: Any) -> dict[str, Any]:
        """The stored settings on the fields, the defaults where one is missing (settings stored before they were
        validated may be incomplete or invalid: an invalid duration shows as empty, for the operator to correct)."""
        stored = stored if isinstance(stored, dict) else {}
        supplier = supplier if isinstance(supplier, dict) else {}
        workflow = {section: {**defaults, **(stored.get(section) if isinstance(stored.get(section), dict) else {})}
                    for section, defaults in DEFAULT_WORKFLOW.items()}
        collection, invoicing = workflow["collection"], workflow["invoicing"]
        alignment = collection["alignment"] if isinstance(collection["alignment"], dict) else {"type": "subscription"}
        recurring = alignment.get("recurringPeriod") or {}
        address = (supplier.get("addresses") or [{}])[0]
        return {
            "supplier_name": supplier.get("name", ""), "supplier_key": supplier.get("key", ""),
            "tax_id": (supplier.get("taxId") or {}).get("code", ""),
            **{name: address.get(key, "") for name, key in SUPPLIER_ADDRESS.items()},
            "alignment": alignment["type"], "anchor_interval": recurring.get("interval", "MONTH"),
            "anchor": dt.datetime.fromisoformat(recurring["anchor"]) if recurring.get("anchor") else None,
            "collection_interval": collection["interval"], "auto_advance": invoicing["autoAdvance"],
            "draft_period": invoicing["draftPeriod"], "due_after": invoicing["dueAfter"],
            "progressive_billing": invoicing["progressiveBilling"],
            "end_proration": invoicing.get("subscriptionEndProrationMode", "bill_actual_period"),
            "collection_method": workflow["payment"]["collectionMethod"],
            "tax_enabled": workflow["tax"]["enabled"], "tax_enforced": workflow["tax"]["enforced"],
        }

    def supplier(self) -> dict[str, Any]:
        data = self.cleaned_data
        party: dict[str, Any] = {"name": data["supplier_name"]}
        if data.get("supplier_key"):
            party["key"] = data["supplier_key"]
        if data.get("tax_id"):
            party["taxId"] = {"code": data["tax_id"]}
        address = {key: data[name] for name, key in SUPPLIER_ADDRESS.items() if data.get(name)}
        if address:
            party["addresses"] = [address]
        return party

    def workflow(self) -> dict[str, Any]:
        data = self.cleaned_data
        alignment: dict[str, Any] = {"type": data["alignment"]}
        if data["alignment"] == "anchored":
            anchor = format_rfc3339(data["anchor"]) if data.get("anchor") else None
            alignment["recurringPeriod"] = {"interval": data.get("anchor_interval"), "anchor": anchor}
        invoicing = {
            "autoAdvance": data["auto_advance"], "draftPeriod": data["draft_period"], "dueAfter": data["due_after"],
            "progressiveBilling": data["progressive_billing"], "subscriptionEndProrationMode": data["end_proration"],
        }
        stored_tax_config = ((self.instance.workflow or {}).get("invoicing") or {}).get("defaultTaxConfig")
        if stored_tax_config:  # set through the API; kept as it is
            invoicing["defaultTaxConfig"] = stored_tax_config
        return {
            "collection": {"alignment": alignment, "interval": data["collection_interval"]},
            "invoicing": invoicing,
            "payment": {"collectionMethod": data["collection_method"]},
            "tax": {"enabled": data["tax_enabled"], "enforced": data["tax_enforced"]},
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance.deleted_at is not None:
            raise forms.ValidationError("An archived billing profile cannot be changed.")
        if data.get("alignment") == "anchored" and not data.get("anchor"):
            self.add_error("anchor", "An anchored cycle needs the date it starts.")
        if self.errors:
            return data
        for check, build in ((supplier_validate, self.supplier), (workflow_validate, self.workflow)):
            try:
                check(build())
            except DomainError as exc:
                self._show(exc)
        return data

    def _show(self, exc: DomainError) -> None:
        problems = exc.extensions.get("validationErrors") or [{"field": "", "message": exc.detail}]
        for problem in problems:
            field, message = SERVICE_FIELDS.get(problem["field"]), problem["message"]
            if field == "alignment" and message.startswith("recurringPeriod.anchor"):
                field = "anchor"
            elif field == "alignment" and message.startswith("recurringPeriod.interval"):
                field = "anchor_interval"
            self.add_error(field, message)


class CustomerOverrideForm(forms.ModelForm):
    billing_profile = forms.ModelChoiceField(
        queryset=live_profiles(), required=False, empty_label="the default profile",
        help_text="The profile that bills this customer (its supplier, workflow and apps).")

    class Meta:
        model = CustomerOverride
        fields = ["customer", "billing_profile"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["billing_profile"].queryset = live_profiles()  # type: ignore[attr-defined]
        if not self.instance._state.adding:
            self.fields["customer"].disabled = True

    def clean_customer(self) -> Any:
        customer = self.cleaned_data["customer"]
        if customer is not None and customer.deleted_at is not None:
            raise forms.ValidationError("This customer is deleted.")
        return customer
