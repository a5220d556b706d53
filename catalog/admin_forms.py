"""Typed forms of the catalog back office: plans, phases, rate cards (every price type, tier rows, commitments,
discounts, entitlement templates), add-ons. No JSON boxes; the services validate (through `admin_inputs`)."""

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.datastructures import MultiValueDict

from catalog.models import Addon, AddonInstanceType, Feature, SettlementMode
from openmeter_site.admin_ui.forms import CurrencyField, DescriptionField, DurationField, FieldsetsForm, KeyValueField
from openmeter_site.core.ids import KEY_RE

KEY_HELP = "Lower case letters, digits and underscores (e.g. api_calls); it cannot change once published."


def key_field(**kwargs: Any) -> forms.RegexField:
    """A catalog key, by the API's rule (`KEY_RE`)."""
    return forms.RegexField(KEY_RE, max_length=64, help_text=KEY_HELP, error_messages={
        "invalid": "Use lower case letters and digits, words joined by single underscores (e.g. api_calls)."}, **kwargs)


def decimal_field(label: str, help_text: str = "", **kwargs: Any) -> forms.DecimalField:
    return forms.DecimalField(label=label, required=False, help_text=help_text,
                              widget=forms.NumberInput(attrs={"step": "any", "class": "om-amount"}), **kwargs)


# --- tiers: rows of "up to", unit price and flat price ------------------------------------------------------------

Tier = tuple[Decimal | None, Decimal | None, Decimal | None]
TIER_PARTS = ("up_to", "unit", "flat")


class TiersWidget(forms.Widget):
    template_name = "admin/catalog/widgets/tiers.html"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        rows = [tuple("" if v is None else str(v) for v in row) for row in value or []]
        context["widget"]["rows"] = rows + [("", "", "")] * max(2, 4 - len(rows))
        return context

    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> list[tuple[str, ...]]:
        assert isinstance(data, MultiValueDict)
        columns = [data.getlist(f"{name}__{part}") for part in TIER_PARTS]
        rows = [tuple(v.strip() for v in row) for row in zip(*columns, strict=False)]
        return [row for row in rows if any(row)]

    def value_omitted_from_data(self, data: Mapping[str, Any], files: Any, name: str) -> bool:
        return f"{name}__up_to" not in data


class TiersField(forms.Field):
    """Price tiers as rows; an empty "up to" is the open-ended last tier. Blank rows are ignored."""

    widget = TiersWidget

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[Tier]:
        tiers = []
        for i, row in enumerate(value or []):
            try:
                tiers.append(tuple(Decimal(v) if v not in (None, "") else None for v in row))
            except InvalidOperation as exc:
                raise ValidationError(f"row {i + 1}: amounts must be decimal numbers") from exc
        return tiers  # type: ignore[return-value]  # rows of three, as the widget reads them

    def has_changed(self, initial: Any, data: Any) -> bool:
        return list(initial or []) != self.to_python(data)


# --- rate cards -------------------------------------------------------------------------------------------------------

PRICE_MODELS = [
    ("", "Free (no price)"),
    ("flat", "Flat fee"),
    ("unit", "Per unit"),
    ("graduated", "Tiered, graduated (each unit at its tier's price)"),
    ("volume", "Tiered, volume (all units at the reached tier's price)"),
    ("package", "Package (per started bundle of units)"),
    ("dynamic", "Dynamic (the metered cost times a multiplier)"),
]
USAGE_MODELS = ("unit", "graduated", "volume", "package", "dynamic")
METERED_TEMPLATE_FIELDS = ("issue_after_reset", "usage_period", "is_soft_limit", "issue_after_reset_priority",
                           "preserve_overage_at_reset")


class RateCardForm(FieldsetsForm):
    name = forms.CharField(max_length=256)
    key = key_field()
    type = forms.ChoiceField(
        label="Charged", choices=[("flat_fee", "as a fee"), ("usage_based", "by usage")], initial="flat_fee",
        widget=forms.RadioSelect, help_text="A fee is billed each billing period (or once); usage is billed on what "
                                            "the feature's meter counts in the period.")
    feature = forms.ChoiceField(required=False, help_text="What the customer gets; usage prices read its meter.")
    billing_cadence = DurationField(required=False, label="Billed every", default_unit="P{}M",
                                    help_text="Empty: billed once (one-time fees only).")
    description = DescriptionField()

    price_model = forms.ChoiceField(label="Price", choices=PRICE_MODELS, required=False)
    amount = decimal_field("Amount")
    payment_term = forms.ChoiceField(choices=[("in_advance", "in advance (start of the period)"),
                                              ("in_arrears", "in arrears (end of the period)")],
                                     initial="in_advance", label="Billed")
    quantity_per_package = decimal_field("Units per package")
    multiplier = decimal_field("Multiplier", "Billed amount = metered cost × multiplier (1 when empty).")
    tiers = TiersField(help_text="Leave “up to” empty on the last tier: it covers everything above.")

    minimum_amount = decimal_field("Minimum per period", "The customer pays at least this much each period.")
    maximum_amount = decimal_field("Maximum per period", "The customer pays at most this much each period.")

    discount_percentage = decimal_field("Percentage off", "0–100")
    free_quantity = decimal_field("Free units", "The first units each period are not charged (usage prices).")

    entitlement = forms.ChoiceField(
        label="Entitlement", required=False,
        choices=[("", "none"), ("metered", "metered: an allowance of usage"), ("boolean", "on/off access"),
                 ("static", "static: a configuration value")])
    issue_after_reset = decimal_field("Allowance per period", "Granted again at each usage-period reset.")
    usage_period = DurationField(required=False, label="Usage period", default_unit="P{}M",
                                 help_text="Empty: the billing period.")
    is_soft_limit = forms.BooleanField(required=False, label="Soft limit (usage above the allowance stays allowed)")
    issue_after_reset_priority = forms.IntegerField(required=False, min_value=1, max_value=255, initial=1,
                                                    label="Grant priority", help_text="1 is burnt down first.")
    preserve_overage_at_reset = forms.BooleanField(required=False, label="Carry overage into the next period")
    static_config = forms.JSONField(required=False, label="Configuration",
                                    help_text="A JSON value the product reads, e.g. {\"seats\": 5}.",
                                    widget=forms.Textarea(attrs={"rows": 2}))

    tax_behavior = forms.ChoiceField(required=False, label="Tax", choices=[
        ("", "the billing profile's default"), ("exclusive", "exclusive (added on top)"),
        ("inclusive", "inclusive (in the price)")])
    stripe_tax_code = forms.CharField(required=False, max_length=13, label="Stripe tax code",
                                      help_text="e.g. txcd_10103001")
    metadata = KeyValueField()

    fieldsets = (
        ("Rate card", "", ("name", "key", "type", "feature", "billing_cadence", "description")),
        ("Price", "", ("price_model", "amount", "payment_term", "quantity_per_package", "multiplier", "tiers")),
        ("Commitments", "Spend limits per billing period (usage prices).", ("minimum_amount", "maximum_amount")),
        ("Discounts", "", ("discount_percentage", "free_quantity")),
        ("Entitlement", "What the customer is entitled to while subscribed.",
         ("entitlement", *METERED_TEMPLATE_FIELDS, "static_config")),
        ("Tax", "", ("tax_behavior", "stripe_tax_code")),
        ("Metadata", "", ("metadata",)),
    )
    show_when = {
        "amount": ("price_model", ("flat", "unit", "package")),
        "payment_term": ("price_model", ("flat",)),
        "quantity_per_package": ("price_model", ("package",)),
        "multiplier": ("price_model", ("dynamic",)),
        "tiers": ("price_model", ("graduated", "volume")),
        "minimum_amount": ("price_model", USAGE_MODELS),
        "maximum_amount": ("price_model", USAGE_MODELS),
        "free_quantity": ("type", ("usage_based",)),
        **dict.fromkeys(METERED_TEMPLATE_FIELDS, ("entitlement", ("metered",))),
        "static_config": ("entitlement", ("static",)),
    }

    def __init__(self, *args: Any, currency: str, features: Sequence[Feature], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.choice_field("feature").choices = [("", "—")] + [
            (f.key, f"{f.name} ({f.key})" + (f", meter {f.meter_slug}" if f.meter_slug else ", no meter"))
            for f in features
        ]
        for name in ("amount", "minimum_amount", "maximum_amount"):
            self.fields[name].label = f"{self.fields[name].label} ({currency})"
        self.fields["tiers"].label = f"Tiers ({currency})"


# --- plans and phases -------------------------------------------------------------------------------------------------


class PlanDetailsForm(FieldsetsForm):
    name = forms.CharField(max_length=256)
    description = DescriptionField()
    billing_cadence = DurationField(label="Billing cadence", default_unit="P{}M",
                                    help_text="How often subscriptions are invoiced.")
    pro_rating_enabled = forms.BooleanField(required=False, initial=True, label="Pro-rate partial periods")
    billables_must_align = forms.BooleanField(
        required=False, initial=True, label="Rate cards bill on the plan's cadence",
        help_text="Off: a rate card may bill on a multiple or a fraction of the plan's cadence.")
    settlement_mode = forms.ChoiceField(choices=SettlementMode.choices, initial=SettlementMode.CREDIT_THEN_INVOICE)
    metadata = KeyValueField()


class PlanCreateForm(PlanDetailsForm):
    key = key_field()
    currency = CurrencyField(initial="USD")
    field_order = ["name", "key", "currency", "billing_cadence", "description"]


class PhaseForm(FieldsetsForm):
    name = forms.CharField(max_length=256)
    key = key_field()
    duration = DurationField(required=False, default_unit="P{}M",
                             help_text="Empty: the phase never ends (only the last phase).")
    description = DescriptionField()
    metadata = KeyValueField()


class PhaseAddForm(PhaseForm):
    position = forms.TypedChoiceField(coerce=int, label="Place", help_text="Phases run one after the other.")

    def __init__(self, *args: Any, phase_names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(i, f"before “{name}”") for i, name in enumerate(phase_names)]
        self.choice_field("position").choices = [*choices, (len(phase_names), "at the end")]
        self.fields["position"].initial = max(len(phase_names) - 1, 0)  # before the open-ended last phase


# --- add-ons ----------------------------------------------------------------------------------------------------------


class AddonDetailsForm(FieldsetsForm):
    name = forms.CharField(max_length=256)
    description = DescriptionField()
    instance_type = forms.ChoiceField(
        choices=[(AddonInstanceType.SINGLE, "single (bought once)"),
                 (AddonInstanceType.MULTIPLE, "multiple (bought in a quantity; flat prices only)")],
        widget=forms.RadioSelect, label="Bought")
    metadata = KeyValueField()


class AddonCreateForm(AddonDetailsForm):
    key = key_field()
    currency = CurrencyField(initial="USD")
    field_order = ["name", "key", "currency", "instance_type", "description"]


class PlanAddonForm(FieldsetsForm):
    addon = forms.ChoiceField(label="Add-on", help_text="Published add-ons in the plan's currency.")
    from_plan_phase = forms.ChoiceField(label="Sold from phase")
    max_quantity = forms.IntegerField(required=False, min_value=1, label="At most",
                                      help_text="For add-ons bought in a quantity; empty: no limit.")

    def __init__(self, *args: Any, addons: Sequence[Addon], phases: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choice_field("addon").choices = [(a.pk, f"{a.name} ({a.key} v{a.version})") for a in addons]
        self.choice_field("from_plan_phase").choices = list(phases)


# --- features ---------------------------------------------------------------------------------------------------------

FILTER_OPERATORS = [("$eq", "is"), ("$ne", "is not"), ("$in", "is one of"), ("$nin", "is none of"),
                    ("$like", "matches (LIKE, % wildcard)"), ("$ilike", "matches, any case (ILIKE)"),
                    ("$nlike", "does not match (LIKE)")]
LIST_OPERATORS = ("$in", "$nin")


class FilterRowsWidget(forms.Widget):
    template_name = "admin/catalog/widgets/filter_rows.html"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        rows = [tuple(row) for row in value or []]
        context["widget"]["rows"] = rows + [("", "$eq", "")] * max(1, 3 - len(rows))
        context["widget"]["operators"] = FILTER_OPERATORS
        return context

    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> list[tuple[str, ...]]:
        assert isinstance(data, MultiValueDict)
        columns = [data.getlist(f"{name}__{part}") for part in ("key", "op", "value")]
        rows = [(k.strip(), op, v.strip()) for k, op, v in zip(*columns, strict=False)]
        return [row for row in rows if row[0] or row[2]]


class FilterRowsField(forms.Field):
    """Advanced group-by filters as rows of group-by key, operator and value(s) → `{key: {"$in": [...]}}`."""

    widget = FilterRowsWidget

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> dict[str, dict[str, Any]]:
        filters: dict[str, dict[str, Any]] = {}
        for i, (key, op, text) in enumerate(value or []):
            if not key:
                raise ValidationError(f"row {i + 1}: name the group-by key")
            if op not in dict(FILTER_OPERATORS):
                raise ValidationError(f"row {i + 1}: unknown operator {op!r}")
            operand: Any = [v.strip() for v in text.split(",") if v.strip()] if op in LIST_OPERATORS else text
            filters.setdefault(key, {})[op] = operand
        return filters


class FeatureCreateForm(FieldsetsForm):
    name = forms.CharField(max_length=256)
    key = key_field()
    meter = forms.ChoiceField(required=False, help_text="Metered features count usage with this meter; without "
                                                       "one the feature is an on/off or configured entitlement.")
    group_by_filters = KeyValueField(label="Only usage where",
                                     help_text="A group-by key of the meter and the value it must have.")
    advanced_filters = FilterRowsField(label="Advanced filters",
                                       help_text="Used instead of the simple filters when given. Lists are "
                                                 "comma-separated.")
    unit_cost = forms.ChoiceField(required=False, label="Unit cost", choices=[
        ("", "none"), ("manual", "a fixed amount per unit (USD)"), ("llm", "LLM token prices")])
    unit_cost_amount = decimal_field("Cost per unit (USD)")
    llm_provider = forms.CharField(required=False, label="Provider", help_text="e.g. openai; or leave empty and "
                                                                             "name the group-by key below")
    llm_provider_property = forms.CharField(required=False, label="Provider group-by key")
    llm_model = forms.CharField(required=False, label="Model", help_text="e.g. gpt-4o")
    llm_model_property = forms.CharField(required=False, label="Model group-by key")
    llm_token_type = forms.ChoiceField(required=False, label="Token type", choices=[("", "—")] + [
        (t, t) for t in ("input", "output", "cache_read", "cache_write", "reasoning")])
    llm_token_type_property = forms.CharField(required=False, label="Token type group-by key")
    metadata = KeyValueField()

    fieldsets = (
        ("Feature", "", ("name", "key", "meter", "group_by_filters", "advanced_filters")),
        ("Unit cost", "What a unit costs you (for cost reports; never billed).",
         ("unit_cost", "unit_cost_amount", "llm_provider", "llm_provider_property", "llm_model",
          "llm_model_property", "llm_token_type", "llm_token_type_property")),
        ("Metadata", "", ("metadata",)),
    )
    show_when = {
        "unit_cost_amount": ("unit_cost", ("manual",)),
        **dict.fromkeys(("llm_provider", "llm_provider_property", "llm_model", "llm_model_property",
                         "llm_token_type", "llm_token_type_property"), ("unit_cost", ("llm",))),
    }

    def __init__(self, *args: Any, meters: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choice_field("meter").choices = [("", "none (not metered)"), *meters]

    def unit_cost_input(self) -> dict[str, Any] | None:
        d = self.cleaned_data
        if d["unit_cost"] == "manual":
            return {"type": "manual", "amount": str(d["unit_cost_amount"] or 0)}
        if d["unit_cost"] != "llm":
            return None
        names = {"provider": "llm_provider", "providerProperty": "llm_provider_property", "model": "llm_model",
                 "modelProperty": "llm_model_property", "tokenType": "llm_token_type",
                 "tokenTypeProperty": "llm_token_type_property"}
        return {"type": "llm", **{wire: d[field] for wire, field in names.items() if d[field]}}
