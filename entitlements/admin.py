"""Back office: entitlements with their live value, grants with a void action, resets and snapshots (read-only)."""

from decimal import Decimal

from django.contrib import admin, messages
from django.utils import timezone

from entitlements import balance
from entitlements.models import BalanceSnapshot, Entitlement, EntitlementType, Grant, UsageReset
from entitlements.services import entitlement_end, entitlement_reset, grant_void
from openmeter_site.admin_ui.actions import ObjectAction, ObjectActionsMixin, confirm_bulk
from openmeter_site.core.errors import DomainError


def _num(value: Decimal | None) -> str:
    return "—" if value is None else format(value.normalize(), "f")


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is not edited by hand: changes go through actions that call the services."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class GrantInline(admin.TabularInline):
    model = Grant
    extra = 0
    can_delete = False
    fields = ("id", "amount", "priority", "effective_at", "expires_at", "voided_at", "recurrence_interval",
              "min_rollover_amount", "max_rollover_amount")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Entitlement)
class EntitlementAdmin(ReadOnlyAdmin):
    list_display = ["feature_key", "customer", "type", "current_balance", "current_usage", "has_access", "active_from",
                    "active_to", "deleted_at"]
    list_filter = ["type", ("deleted_at", admin.EmptyFieldListFilter), "is_soft_limit"]
    search_fields = ["id", "feature_key", "customer__key", "customer__name", "customer__subjects__subject_key"]
    list_select_related = ["customer", "feature__meter"]
    list_per_page = 25
    inlines = [GrantInline]
    actions = ["reset_now", "end_now", "recompute"]
    readonly_fields = ["current_period", "current_balance", "current_usage", "current_overage", "has_access"]

    def _value(self, obj: Entitlement) -> balance.EntitlementValue:
        cache = getattr(self, "_values", None)
        if cache is None or cache[0] is not obj:
            self._values = (obj, balance.value(entitlement=obj, at=timezone.now()))
        return self._values[1]

    @admin.display(description="balance")
    def current_balance(self, obj: Entitlement) -> str:
        return _num(self._value(obj).balance)

    @admin.display(description="usage (period)")
    def current_usage(self, obj: Entitlement) -> str:
        return _num(self._value(obj).usage)

    @admin.display(description="overage")
    def current_overage(self, obj: Entitlement) -> str:
        return _num(self._value(obj).overage)

    @admin.display(description="access", boolean=True)
    def has_access(self, obj: Entitlement) -> bool:
        return self._value(obj).has_access

    @admin.display(description="current usage period")
    def current_period(self, obj: Entitlement) -> str:
        v = self._value(obj)
        return f"{v.period_start} → {v.period_end}" if v.period_start else "—"

    @admin.action(description="Reset usage now (metered)")
    def reset_now(self, request, queryset):
        self._each(request, queryset.filter(type=EntitlementType.METERED), lambda e: entitlement_reset(entitlement=e))

    @admin.action(description="End now (soft delete)")
    def end_now(self, request, queryset):
        self._each(request, queryset.filter(deleted_at__isnull=True), lambda e: entitlement_end(entitlement=e))

    @admin.action(description="Recompute balances (drop snapshots, e.g. after very late events)")
    def recompute(self, request, queryset):
        self._each(request, queryset, lambda e: balance.invalidate_snapshots(entitlement=e))

    def _each(self, request, queryset, apply) -> None:
        done = 0
        for entitlement in queryset:
            try:
                apply(entitlement)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{entitlement}: {exc.detail}", level=messages.ERROR)
        self.message_user(request, f"Done for {done} entitlement(s).")


def _void_grant(request, grant: Grant, data: dict) -> str:
    grant_void(grant=grant)
    return f"Grant {grant.pk} is void: it no longer adds to the balance."


@admin.register(Grant)
class GrantAdmin(ObjectActionsMixin, ReadOnlyAdmin):
    list_display = ["id", "entitlement", "amount", "priority", "effective_at", "expires_at", "voided_at",
                    "recurrence_interval"]
    list_filter = [("voided_at", admin.EmptyFieldListFilter), "priority", "expiration_duration"]
    search_fields = ["id", "entitlement__id", "entitlement__feature_key", "entitlement__customer__key"]
    list_select_related = ["entitlement__customer"]
    actions = ["void_now"]
    object_actions = (
        ObjectAction("void", "Void grant", run=_void_grant, destructive=True,
                     confirm="Voiding a grant cannot be undone: its remaining amount stops counting from now on.",
                     available=lambda grant: grant.voided_at is None),
    )

    def has_object_action_permission(self, request, obj) -> bool:
        return request.user.has_perm("entitlements.change_grant")

    @admin.action(description="Void selected grants now")
    def void_now(self, request, queryset):
        confirmation = confirm_bulk(self, request, queryset, action="void_now", title="Void grants",
                                    warning="Voiding cannot be undone: the remaining amounts of these grants stop "
                                            "counting from now on.")
        if confirmation is not None:
            return confirmation
        done = 0
        for grant in queryset:
            try:
                grant_void(grant=grant)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"grant {grant.pk}: {exc.detail}", level=messages.ERROR)
        self.message_user(request, f"Voided {done} grant(s).")


@admin.register(UsageReset)
class UsageResetAdmin(ReadOnlyAdmin):
    list_display = ["entitlement", "reset_at", "automatic", "retain_anchor", "preserve_overage", "created_at"]
    list_filter = ["automatic", "preserve_overage"]
    search_fields = ["entitlement__id", "entitlement__feature_key", "entitlement__customer__key"]


@admin.register(BalanceSnapshot)
class BalanceSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["entitlement", "at", "overage", "created_at"]
    search_fields = ["entitlement__id", "entitlement__feature_key"]
