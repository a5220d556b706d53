"""Back office: entitlements with their live value and the operator actions on them (grant credit, reset usage,
override), grants with a void action, resets and snapshots (read-only). Every action calls the service the API
uses; balances, usage and grants are in the feature's units (tokens, requests), not money."""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.safestring import SafeString

from entitlements import balance
from entitlements.engine import interval_iso
from entitlements.models import BalanceSnapshot, Entitlement, EntitlementType, Grant, UsageReset
from entitlements.services import (
    GrantInput,
    UsagePeriodInput,
    entitlement_end,
    entitlement_override,
    entitlement_reset,
    grant_create,
    grant_void,
)
from openmeter_site.admin_ui.actions import ActionForm, ObjectAction, ObjectActionsMixin, confirm_bulk, for_each_selected
from openmeter_site.admin_ui.display import EMPTY, duration_text, period, quantity, quantity_text, when, when_text
from openmeter_site.admin_ui.filters import duration_filter, happened_filter
from openmeter_site.admin_ui.forms import DurationField, LocalDateTimeField

EXPIRATIONS = {"PT{}H": "HOUR", "P{}D": "DAY", "P{}W": "WEEK", "P{}M": "MONTH", "P{}Y": "YEAR"}  # ISO → the API's


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is not edited by hand: changes go through actions that call the services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- the forms of the operator actions ---------------------------------------------------------------------------


class GrantCreditForm(ActionForm):
    """Credit on a metered entitlement, in the feature's units; the API's EntitlementGrantCreateInputV2."""

    amount = forms.DecimalField(min_value=Decimal(0), max_digits=38, decimal_places=19)
    priority = forms.IntegerField(min_value=1, max_value=255, initial=1,
                                  help_text="Grants with a lower number are used first (1 = first).")
    effective_at = LocalDateTimeField(label="Effective from", help_text="In your time zone. Empty: now.")
    expires_after = DurationField(required=False, help_text="Empty: never expires.")
    min_rollover_amount = forms.DecimalField(label="Rollover at least", min_value=Decimal(0), max_digits=38,
                                             decimal_places=19, required=False,
                                             help_text="At each usage-period reset the balance carried over is at "
                                                       "least this (empty: 0)…")
    max_rollover_amount = forms.DecimalField(label="Rollover at most", min_value=Decimal(0), max_digits=38,
                                             decimal_places=19, required=False,
                                             help_text="… and at most this (empty: the amount).")
    renews_every = DurationField(required=False, help_text="The grant is topped up again at this interval. Empty: "
                                                           "it does not renew.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"].help_text = f"In {self.obj.feature_key} units."

    def clean_expires_after(self) -> tuple[str, int] | None:
        """"P30D" → ("DAY", 30): the API's expiration (hours, days, weeks, months or years)."""
        value = self.cleaned_data["expires_after"]
        if value is None:
            return None
        count = int("".join(c for c in value if c.isdigit()))
        unit = EXPIRATIONS.get(value.replace(str(count), "{}", 1))
        if unit is None or not 1 <= count <= 1000:
            raise forms.ValidationError("A grant expires after 1 to 1,000 hours, days, weeks, months or years.")
        return unit, count


def grant_credit(request: HttpRequest, entitlement: Entitlement, data: dict[str, Any]) -> str:
    expiration, count = data["expires_after"] or (None, None)
    grant = grant_create(entitlement=entitlement, data=GrantInput(
        amount=data["amount"], effective_at=data["effective_at"] or timezone.now(), priority=data["priority"],
        expiration_duration=expiration, expiration_count=count,
        min_rollover_amount=data["min_rollover_amount"] or Decimal(0), max_rollover_amount=data["max_rollover_amount"],
        recurrence=UsagePeriodInput(data["renews_every"]) if data["renews_every"] else None,
    ))
    now = balance.value(entitlement=entitlement, at=timezone.now())
    return (f"{entitlement.customer}: granted {quantity_text(grant.amount)} {entitlement.feature_key}; the balance is "
            f"now {quantity_text(now.balance)}.")


class ResetForm(ActionForm):
    effective_at = LocalDateTimeField(label="Reset at", help_text="In your time zone; not in the future, not before "
                                                                  "the current usage period. Empty: now.")
    retain_anchor = forms.BooleanField(required=False, help_text="Keep the usage period's anchor (later resets stay "
                                                                 "on the same schedule); otherwise periods restart "
                                                                 "from this reset.")
    preserve_overage = forms.BooleanField(required=False, help_text="Carry the overage into the new period.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["preserve_overage"].initial = self.obj.preserve_overage_at_reset


def reset_usage(request: HttpRequest, entitlement: Entitlement, data: dict[str, Any]) -> str:
    reset = entitlement_reset(entitlement=entitlement, effective_at=data["effective_at"],
                              retain_anchor=data["retain_anchor"], preserve_overage=data["preserve_overage"])
    return f"Usage of {entitlement} starts again from {when_text(reset.reset_at)}."


class OverrideForm(ActionForm):
    """A new entitlement of the same feature replacing this one from now on (the API's override)."""

    type = forms.ChoiceField(choices=EntitlementType.choices)
    usage_period = DurationField(required=False, help_text="Metered: usage resets at this interval (e.g. 1 month).")
    usage_period_anchor = LocalDateTimeField(help_text="In your time zone. Empty: now.")
    is_soft_limit = forms.BooleanField(required=False, label="Soft limit",
                                       help_text="Metered: access continues beyond the balance.")
    issue_after_reset = forms.DecimalField(min_value=Decimal(0), max_digits=38, decimal_places=19, required=False,
                                           label="Allowance per period",
                                           help_text="Metered: credit granted again at every reset.")
    issue_after_reset_priority = forms.IntegerField(min_value=1, max_value=255, required=False,
                                                    label="Allowance priority", help_text="1 is used first.")
    preserve_overage_at_reset = forms.BooleanField(required=False, label="Carry overage into the next period")
    config = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
                             help_text="Static: the JSON object your application reads, returned as is.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        e: Entitlement = self.obj
        self.initial.update(
            type=e.type, is_soft_limit=e.is_soft_limit,
            usage_period=interval_iso(e.usage_period_interval) if e.usage_period_interval else None,
            issue_after_reset=e.issue_after_reset, issue_after_reset_priority=e.issue_after_reset_priority,
            preserve_overage_at_reset=e.preserve_overage_at_reset, config=e.config,
        )


def override(request: HttpRequest, entitlement: Entitlement, data: dict[str, Any]) -> str:
    new = entitlement_override(
        entitlement=entitlement, feature=entitlement.feature, type=data["type"],
        usage_period=UsagePeriodInput(data["usage_period"], data["usage_period_anchor"]) if data["usage_period"] else None,
        is_soft_limit=data["is_soft_limit"], issue_after_reset=data["issue_after_reset"],
        issue_after_reset_priority=data["issue_after_reset_priority"],
        preserve_overage_at_reset=data["preserve_overage_at_reset"], config=data["config"] or None,
    )
    return f"{entitlement} is replaced by a new {new.type} entitlement from {when_text(new.active_from)}."


def _is_metered(entitlement: Entitlement) -> bool:
    return entitlement.type == EntitlementType.METERED and entitlement.deleted_at is None


def _void_grant(request: HttpRequest, grant: Grant, data: dict[str, Any]) -> str:
    grant_void(grant=grant)
    return f"The grant of {grant} is void: it no longer adds to the balance."


# --- the admin pages ---------------------------------------------------------------------------------------------


class GrantInline(admin.TabularInline):
    model = Grant
    extra = 0
    can_delete = False
    fields = ("amount_shown", "priority", "effective", "expires", "voided", "renews", "rollover")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="amount")
    def amount_shown(self, grant: Grant) -> SafeString:
        return quantity(grant.amount)

    @admin.display(description="effective")
    def effective(self, grant: Grant) -> SafeString:
        return when(grant.effective_at)

    @admin.display(description="expires")
    def expires(self, grant: Grant) -> SafeString:
        return when(grant.expires_at)

    @admin.display(description="voided")
    def voided(self, grant: Grant) -> SafeString:
        return when(grant.voided_at)

    @admin.display(description="renews every")
    def renews(self, grant: Grant) -> str:
        return duration_text(grant.recurrence_interval)

    @admin.display(description="rollover")
    def rollover(self, grant: Grant) -> str:
        return f"{quantity_text(grant.min_rollover_amount)} – {quantity_text(grant.max_rollover_amount)}"


@admin.register(Entitlement)
class EntitlementAdmin(ObjectActionsMixin, ReadOnlyAdmin):
    list_display = ["feature_key", "customer", "type", "current_balance", "current_usage", "has_access", "starts",
                    "ends", "deleted_at"]
    list_filter = ["type", happened_filter("deleted_at", "ended"), "is_soft_limit"]
    search_fields = ["id", "feature_key", "customer__key", "customer__name", "customer__subjects__subject_key"]
    list_select_related = ["customer", "feature__meter"]
    list_per_page = 25
    inlines = [GrantInline]
    actions = ["reset_now", "end_now", "recompute"]
    fields = ["customer", "feature", "type", "current_period", "current_balance", "current_usage", "current_overage",
              "has_access", "is_soft_limit", "usage_period", "issue_after_reset", "starts", "ends", "config"]
    readonly_fields = fields
    object_actions = (
        ObjectAction("grant", "Grant credit", run=grant_credit, form=GrantCreditForm,
                     description="Add credit to this entitlement's balance, in the feature's units.",
                     available=_is_metered),
        ObjectAction("reset", "Reset usage", run=reset_usage, form=ResetForm,
                     confirm="Usage counts from zero from the reset on; grants roll over as they are set up to.",
                     available=_is_metered),
        ObjectAction("override", "Override", run=override, form=OverrideForm,
                     description="Replace this entitlement from now on with one set up as below (same feature). "
                                 "Usage of the current period carries over to the new one.",
                     confirm="The current entitlement ends now; its grants stay with it.",
                     available=lambda e: e.deleted_at is None),
    )

    def has_object_action_permission(self, request: HttpRequest, obj: Any) -> bool:
        return request.user.has_perm("entitlements.change_entitlement")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Entitlement]:
        return super().get_queryset(request).prefetch_related("customer__subjects")  # each row's live value reads them

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        entitlement = self.get_object(request, object_id)
        title = {"title": str(entitlement), "subtitle": None} if entitlement else {}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **title})

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """The page's live values in a few statements however many rows it shows (`balance.values`)."""
        changelist = super().get_changelist_instance(request)
        page = list(changelist.result_list)  # evaluated once: the rows the page renders
        values = balance.values(entitlements=page, at=timezone.now())
        for entitlement in page:
            entitlement.live_value = values[entitlement.pk]  # type: ignore[attr-defined]
        return changelist

    def _value(self, obj: Entitlement) -> balance.EntitlementValue:
        if not hasattr(obj, "live_value"):
            obj.live_value = balance.value(entitlement=obj, at=timezone.now())  # type: ignore[attr-defined]
        return obj.live_value  # type: ignore[attr-defined]

    @admin.display(description="balance")
    def current_balance(self, obj: Entitlement) -> SafeString:
        return quantity(self._value(obj).balance)

    @admin.display(description="usage (period)")
    def current_usage(self, obj: Entitlement) -> SafeString:
        return quantity(self._value(obj).usage)

    @admin.display(description="overage")
    def current_overage(self, obj: Entitlement) -> SafeString:
        return quantity(self._value(obj).overage)

    @admin.display(description="access", boolean=True)
    def has_access(self, obj: Entitlement) -> bool:
        return self._value(obj).has_access

    @admin.display(description="current usage period")
    def current_period(self, obj: Entitlement) -> SafeString:
        v = self._value(obj)
        return period(v.period_start, v.period_end) if v.period_start else EMPTY

    @admin.display(description="usage period")
    def usage_period(self, obj: Entitlement) -> str:
        return f"every {duration_text(obj.usage_period_interval)}" if obj.usage_period_interval else "—"

    @admin.display(description="starts", ordering="active_from")
    def starts(self, obj: Entitlement) -> SafeString:
        return when(obj.active_from)

    @admin.display(description="ends", ordering="active_to")
    def ends(self, obj: Entitlement) -> SafeString:
        return when(obj.active_to)

    @admin.action(description="Reset usage now (metered)")
    def reset_now(self, request: HttpRequest, queryset: QuerySet[Entitlement]) -> None:
        for_each_selected(self, request, queryset.filter(type=EntitlementType.METERED),
                          lambda e: entitlement_reset(entitlement=e), done="Reset the usage of {}.")

    @admin.action(description="End now (soft delete)")
    def end_now(self, request: HttpRequest, queryset: QuerySet[Entitlement]) -> HttpResponse | None:
        confirmation = confirm_bulk(self, request, queryset, action="end_now", title="End entitlements now",
                                    warning="These entitlements end now: their customers lose access to the features.")
        if confirmation is not None:
            return confirmation
        for_each_selected(self, request, queryset.filter(deleted_at__isnull=True),
                          lambda e: entitlement_end(entitlement=e), done="Ended {} now.")
        return None

    @admin.action(description="Recompute balances (drop snapshots, e.g. after very late events)")
    def recompute(self, request: HttpRequest, queryset: QuerySet[Entitlement]) -> None:
        for_each_selected(self, request, queryset, lambda e: balance.invalidate_snapshots(entitlement=e),
                          done="Dropped the balance snapshots of {}: their balances are recomputed from usage.")


@admin.register(Grant)
class GrantAdmin(ObjectActionsMixin, ReadOnlyAdmin):
    list_display = ["__str__", "entitlement", "amount_shown", "priority", "effective", "expires", "voided",
                    "renews"]
    list_filter = [happened_filter("voided_at", "voided"), "priority",
                   duration_filter("expiration_duration", "expires after")]
    search_fields = ["id", "entitlement__id", "entitlement__feature_key", "entitlement__customer__key",
                     "entitlement__customer__name"]
    list_select_related = ["entitlement__customer"]
    fields = ["entitlement", "amount_shown", "priority", "effective", "expires", "voided", "renews", "rollover",
              "metadata"]
    readonly_fields = fields
    actions = ["void_now"]
    object_actions = (
        ObjectAction("void", "Void grant", run=_void_grant, destructive=True,
                     confirm="Voiding a grant cannot be undone: its remaining amount stops counting from now on.",
                     available=lambda grant: grant.voided_at is None),
    )
    amount_shown = GrantInline.amount_shown
    effective = GrantInline.effective
    expires = GrantInline.expires
    voided = GrantInline.voided
    renews = GrantInline.renews
    rollover = GrantInline.rollover

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup == "entitlement__customer" or super().lookup_allowed(lookup, value, request)

    def has_object_action_permission(self, request: HttpRequest, obj: Any) -> bool:
        return request.user.has_perm("entitlements.change_grant")

    @admin.action(description="Void selected grants now")
    def void_now(self, request: HttpRequest, queryset: QuerySet[Grant]) -> HttpResponse | None:
        confirmation = confirm_bulk(self, request, queryset, action="void_now", title="Void grants",
                                    warning="Voiding cannot be undone: the remaining amounts of these grants stop "
                                            "counting from now on.")
        if confirmation is not None:
            return confirmation
        for_each_selected(self, request, queryset, lambda grant: grant_void(grant=grant), done="Voided {}.")
        return None


@admin.register(UsageReset)
class UsageResetAdmin(ReadOnlyAdmin):
    list_display = ["entitlement", "reset", "automatic", "retain_anchor", "preserve_overage"]
    list_filter = ["automatic", "preserve_overage"]
    search_fields = ["entitlement__id", "entitlement__feature_key", "entitlement__customer__key"]
    list_select_related = ["entitlement__customer"]

    @admin.display(description="reset at", ordering="reset_at")
    def reset(self, obj: UsageReset) -> SafeString:
        return when(obj.reset_at)


@admin.register(BalanceSnapshot)
class BalanceSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["entitlement", "taken_at", "overage_shown", "checkpoint"]
    search_fields = ["entitlement__id", "entitlement__feature_key"]
    list_select_related = ["entitlement__customer"]
    fields = ["entitlement", "taken_at", "period_started", "grant_balances", "usage_shown", "grant_usage_shown",
              "overage_shown", "checkpoint"]
    readonly_fields = fields

    @admin.display(description="usage period started")
    def period_started(self, obj: BalanceSnapshot) -> SafeString:
        return when(obj.period_start)

    @admin.display(description="balance per grant")
    def grant_balances(self, obj: BalanceSnapshot) -> str:
        return ", ".join(f"{grant}: {quantity_text(amount)}" for grant, amount in (obj.balances or {}).items()) or "—"

    @admin.display(description="usage in the period so far")
    def usage_shown(self, obj: BalanceSnapshot) -> SafeString:
        return quantity(obj.usage)

    @admin.display(description="burnt from grants")
    def grant_usage_shown(self, obj: BalanceSnapshot) -> SafeString:
        return quantity(obj.grant_usage)

    @admin.display(description="at", ordering="at")
    def taken_at(self, obj: BalanceSnapshot) -> SafeString:
        return when(obj.at)

    @admin.display(description="overage")
    def overage_shown(self, obj: BalanceSnapshot) -> SafeString:
        return quantity(obj.overage)
