from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from openmeter_site.admin_ui.filters import happened_filter
from openmeter_site.core.errors import DomainError
from portal.models import PortalToken
from portal.services import portal_token_create, portal_tokens_invalidate


class PortalTokenForm(forms.ModelForm):
    expires_at = forms.DateTimeField(required=False, help_text="Empty: the default lifetime from now.")

    class Meta:
        model = PortalToken
        fields = ["subject", "allowed_meter_slugs", "expires_at"]


@admin.register(PortalToken)
class PortalTokenAdmin(admin.ModelAdmin):
    form = PortalTokenForm
    list_display = ["subject", "prefix", "allowed_meter_slugs", "expires_at", "invalidated_at", "created_at"]
    list_filter = [happened_filter("invalidated_at", "invalidated"), "expires_at"]
    search_fields = ["id", "subject", "prefix"]
    actions = ["invalidate"]

    def get_readonly_fields(self, request: HttpRequest, obj: PortalToken | None = None) -> list[str]:
        if obj is None:
            return []
        return ["id", "subject", "prefix", "allowed_meter_slugs", "expires_at", "invalidated_at", "created_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # invalidate instead: the row is the audit trail

    def save_model(self, request: HttpRequest, obj: PortalToken, form: PortalTokenForm, change: bool) -> None:
        if change:
            return  # tokens are immutable
        try:
            token, raw = portal_token_create(
                subject=obj.subject,
                allowed_meter_slugs=obj.allowed_meter_slugs,
                expires_at=form.cleaned_data.get("expires_at"),
            )
        except DomainError as exc:
            messages.error(request, exc.detail)
            return
        obj.pk = token.pk
        messages.warning(request, f"New portal token (shown once, copy it now): {raw}")

    @admin.action(description="Invalidate selected tokens")
    def invalidate(self, request: HttpRequest, queryset: QuerySet[PortalToken]) -> None:
        count = sum(portal_tokens_invalidate(token_id=t.pk) for t in queryset.filter(invalidated_at__isnull=True))
        self.message_user(request, f"Invalidated {count} token(s).")
