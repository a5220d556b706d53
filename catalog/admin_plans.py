"""Back office for plans and add-ons: a plan editor (phases inline, rate cards inline on each phase) with
publish / archive / new-version actions calling the same services as the API. Published versions are
read-only: the way to change one is a new version."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import serializers

from catalog.api.ratecards import validate_rate_card
from catalog.models import Addon, CatalogStatus, Plan, PlanAddon, PlanPhase, RateCard
from catalog.services.addons import addon_archive, addon_publish
from catalog.services.plans import plan_archive, plan_new_version, plan_publish, plan_validation_errors
from catalog.services.ratecards import features_by_key, rate_card_problems
from openmeter_site.core.errors import DomainError


class RateCardForm(forms.ModelForm):
    """Validates a rate card exactly as the API does (wire shape, prices, features)."""

    class Meta:
        model = RateCard
        fields = [
            "index", "type", "key", "name", "description", "feature_key", "billing_cadence",
            "price_json", "discounts_json", "entitlement_template_json", "tax_config",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        wire = {
            "type": data.get("type"), "key": data.get("key"), "name": data.get("name"),
            "description": data.get("description") or None, "featureKey": data.get("feature_key") or None,
            "billingCadence": data.get("billing_cadence") or None, "price": data.get("price_json"),
            "discounts": data.get("discounts_json"), "entitlementTemplate": data.get("entitlement_template_json"),
            "taxConfig": data.get("tax_config"),
        }
        try:
            card = validate_rate_card(wire)
        except serializers.ValidationError as exc:
            raise forms.ValidationError(json.dumps(exc.detail)) from exc
        features = features_by_key([card["featureKey"]])
        problems = rate_card_problems(card, features, "rateCard")
        if problems:
            raise forms.ValidationError(problems)
        self.instance.feature = features.get(card["featureKey"]) if card["featureKey"] else None
        data.update(price_json=card["price"], discounts_json=card["discounts"],
                    entitlement_template_json=card["entitlementTemplate"], tax_config=card["taxConfig"])
        return data


def is_draft(obj: Any) -> bool:
    """Whether the plan or add-on that `obj` is (or belongs to) is still a draft."""
    owner = getattr(obj, "plan", None) or obj
    return obj is None or getattr(owner, "status", CatalogStatus.DRAFT) == CatalogStatus.DRAFT


class EditableWhileDraft:
    """Inlines are editable only while the owning plan or add-on is a draft."""

    def _owner_is_draft(self, obj: Any) -> bool:
        return is_draft(obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and self._owner_is_draft(obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_add_permission(request, obj) and self._owner_is_draft(obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and self._owner_is_draft(obj)


class PhaseRateCardInline(EditableWhileDraft, admin.StackedInline):
    model = RateCard
    fk_name = "phase"
    form = RateCardForm
    extra = 0


class AddonRateCardInline(PhaseRateCardInline):
    fk_name = "addon"


class PlanPhaseInline(EditableWhileDraft, admin.TabularInline):
    model = PlanPhase
    fields = ["index", "key", "name", "duration", "rate_card_summary"]
    readonly_fields = ["rate_card_summary"]
    extra = 0
    show_change_link = True  # rate cards are edited on the phase's page

    @admin.display(description="rate cards")
    def rate_card_summary(self, phase: PlanPhase) -> str:
        return ", ".join(f"{c.key} ({c.type})" for c in phase.rate_cards.all()) or "—"


class PlanAddonInline(EditableWhileDraft, admin.TabularInline):
    model = PlanAddon
    fields = ["addon", "from_plan_phase", "max_quantity", "deleted_at"]
    extra = 0


def _run(modeladmin: admin.ModelAdmin, request: HttpRequest, objects: QuerySet, action: Any, verb: str) -> None:
    for obj in objects:
        try:
            action(obj)
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.detail}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{obj} {verb}", messages.SUCCESS)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(s.value, s.label) for s in CatalogStatus]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        from catalog.services.versioning import status_q

        return queryset.filter(status_q(self.value(), timezone.now())) if self.value() else queryset


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["key", "version", "name", "currency", "billing_cadence", "status", "effective_from", "effective_to"]
    list_filter = [StatusFilter, "currency", "billing_cadence"]
    search_fields = ["key", "name", "id"]
    readonly_fields = ["id", "version", "effective_from", "effective_to", "status", "validation_errors", "deleted_at"]
    fields = [
        "id", "key", "version", "name", "description", "currency", "billing_cadence", "pro_rating_enabled",
        "billables_must_align", "settlement_mode", "status", "effective_from", "effective_to", "validation_errors",
        "deleted_at",
    ]
    inlines = [PlanPhaseInline, PlanAddonInline]
    actions = ["publish", "archive", "new_version"]

    def get_readonly_fields(self, request: HttpRequest, obj: Plan | None = None) -> list[str]:
        return self.readonly_fields + (["key", "currency"] if obj else [])

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # the changelist's actions need change permission; only the form is locked for published plans
        return super().has_change_permission(request, obj) and is_draft(obj)

    def save_model(self, request: HttpRequest, obj: Plan, form: forms.ModelForm, change: bool) -> None:
        if not change:
            from catalog.services.versioning import next_version

            obj.version = next_version(Plan, obj.key)
        super().save_model(request, obj, form, change)

    @admin.display(description="validation errors")
    def validation_errors(self, plan: Plan) -> str:
        errors = plan_validation_errors(plan) if plan.pk else []
        return "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "none"

    @admin.action(description="Publish (effective now)")
    def publish(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        _run(self, request, queryset, lambda p: plan_publish(plan_id=p.pk), "published")

    @admin.action(description="Archive (effective now)")
    def archive(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        _run(self, request, queryset, lambda p: plan_archive(plan_id=p.pk), "archived")

    @admin.action(description="New version (a draft copy)")
    def new_version(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        _run(self, request, queryset, lambda p: plan_new_version(plan_id=p.pk), "copied to a new draft version")


@admin.register(PlanPhase)
class PlanPhaseAdmin(admin.ModelAdmin):
    list_display = ["plan", "index", "key", "name", "duration"]
    search_fields = ["plan__key", "key"]
    fields = ["plan", "index", "key", "name", "description", "duration"]
    inlines = [PhaseRateCardInline]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return False  # reached from the plan editor

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and is_draft(obj)


@admin.register(Addon)
class AddonAdmin(admin.ModelAdmin):
    list_display = ["key", "version", "name", "instance_type", "currency", "status", "effective_from", "effective_to"]
    list_filter = [StatusFilter, "instance_type", "currency"]
    search_fields = ["key", "name", "id"]
    readonly_fields = ["id", "version", "effective_from", "effective_to", "status", "deleted_at"]
    fields = ["id", "key", "version", "name", "description", "instance_type", "currency", "status",
              "effective_from", "effective_to", "deleted_at"]
    inlines = [AddonRateCardInline]
    actions = ["publish", "archive"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and is_draft(obj)

    def save_model(self, request: HttpRequest, obj: Addon, form: forms.ModelForm, change: bool) -> None:
        if not change:
            from catalog.services.versioning import next_version

            obj.version = next_version(Addon, obj.key)
        super().save_model(request, obj, form, change)

    @admin.action(description="Publish (effective now)")
    def publish(self, request: HttpRequest, queryset: QuerySet[Addon]) -> None:
        _run(self, request, queryset, lambda a: addon_publish(addon_id=a.pk), "published")

    @admin.action(description="Archive (effective now)")
    def archive(self, request: HttpRequest, queryset: QuerySet[Addon]) -> None:
        _run(self, request, queryset, lambda a: addon_archive(addon_id=a.pk), "archived")
