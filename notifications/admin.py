"""Back office for notifications: channels and rules are written through the services; events are history."""

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from billing.models import Invoice
from entitlements.models import Entitlement
from notifications.models import (
    NotificationChannel,
    NotificationDelivery,
    NotificationDeliveryAttempt,
    NotificationEvent,
    NotificationRule,
    ThresholdType,
)
from notifications.services import channels as channel_services
from notifications.services import events as event_services
from notifications.services import rules as rule_services
from notifications.services.samples import TEST_ANNOTATION, rule_test
from openmeter_site.admin_ui.actions import ServiceSaveMixin, confirm_bulk, for_each_selected
from openmeter_site.admin_ui.display import when
from openmeter_site.admin_ui.filters import happened_filter
from openmeter_site.admin_ui.forms import KeyValueField
from openmeter_site.core.crypto import mask_secret
from openmeter_site.core.errors import DomainError


class TimesMixin:
    """Times in the operator's zone, UTC on hover."""

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Any) -> str:
        return when(obj.created_at)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj: Any) -> str:
        return when(obj.updated_at)

    @admin.display(description="deleted", ordering="deleted_at")
    def deleted(self, obj: Any) -> str:
        return when(obj.deleted_at)

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, obj: Any) -> str:
        return when(obj.next_attempt_at)


# the service's error prefix (the API's field) → the form's field
CHANNEL_FIELDS = {"url": "url", "signingSecret": "signing_secret", "customHeaders": "custom_headers"}
_NAMED = re.compile(r"^[A-Za-z]+(?:\[(\d+)\][.\w]*)?: ")  # "customHeaders: ", "thresholds[1].value: "


def field_message(detail: str) -> str:
    """A service's message for the form field it names, without the API's name of it: "customHeaders: X is set by
    the webhook sender" → "X is set by …", "thresholds[1].value: must be …" → "row 2: must be …"."""
    named = _NAMED.match(detail)
    if named is None:
        return detail
    rest = detail[named.end():]
    return f"row {int(named.group(1)) + 1}: {rest}" if named.group(1) else rest


class ChannelForm(forms.ModelForm):
    signing_secret = forms.RegexField(
        channel_services.SIGNING_SECRET_RE, required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="whsec_ and 32 to 100 base64 characters. Leave empty to keep the current secret (or to generate one "
                  "for a new channel). Never shown again.",
    )
    custom_headers = KeyValueField(label="Custom headers", help_text="HTTP headers sent with every delivery.")
    metadata = KeyValueField()

    class Meta:
        model = NotificationChannel
        fields = ["name", "url", "custom_headers", "disabled", "metadata"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        try:
            channel_services.validate_channel_input(
                url=data.get("url", ""), signing_secret=data.get("signing_secret"), custom_headers=data.get("custom_headers")
            )
        except DomainError as exc:
            field = CHANNEL_FIELDS.get(exc.detail.partition(":")[0])
            if field in self.fields:
                self.add_error(field, field_message(exc.detail))
            else:
                self.add_error(None, exc.detail)
        return data


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ServiceSaveMixin, TimesMixin, admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "type", "url", "disabled", "rule_count", "created", "deleted"]
    list_filter = ["disabled", happened_filter("deleted_at", "deleted")]
    search_fields = ["id", "name", "url"]
    readonly_fields = ["id", "type", "masked_secret", "created", "updated", "deleted"]
    actions = ["disable", "enable", "soft_delete"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[NotificationChannel]:
        live_rules = Q(rules__deleted_at__isnull=True)
        return super().get_queryset(request).annotate(live_rules=Count("rules", filter=live_rules))

    @admin.display(description="rules", ordering="live_rules")
    def rule_count(self, obj: NotificationChannel) -> int:
        return obj.live_rules

    @admin.display(description="signing secret")
    def masked_secret(self, obj: NotificationChannel) -> str:
        return mask_secret(obj.signing_secret) if obj.signing_secret_encrypted else "-"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # soft delete through the action, which refuses channels still used by rules

    def save_model(self, request: HttpRequest, obj: NotificationChannel, form: ChannelForm, change: bool) -> None:
        kwargs = {
            "name": obj.name, "url": obj.url, "custom_headers": obj.custom_headers or {}, "disabled": obj.disabled,
            "metadata": obj.metadata, "signing_secret": form.cleaned_data.get("signing_secret") or None,
        }
        saved = (
            channel_services.channel_update(channel_id=obj.pk, **kwargs) if change
            else channel_services.channel_create(**kwargs)
        )
        obj.pk = saved.pk

    @admin.action(description="Disable selected channels")
    def disable(self, request: HttpRequest, queryset: QuerySet[NotificationChannel]) -> None:
        for_each_selected(self, request, queryset.filter(deleted_at__isnull=True),
                          lambda c: channel_services.channel_set_disabled(channel_id=c.pk, disabled=True),
                          done="Disabled {}.")

    @admin.action(description="Enable selected channels")
    def enable(self, request: HttpRequest, queryset: QuerySet[NotificationChannel]) -> None:
        for_each_selected(self, request, queryset.filter(deleted_at__isnull=True),
                          lambda c: channel_services.channel_set_disabled(channel_id=c.pk, disabled=False),
                          done="Enabled {}.")

    @admin.action(description="Delete selected channels (not used by any rule)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[NotificationChannel]) -> HttpResponse | None:
        confirmation = confirm_bulk(self, request, queryset, action="soft_delete", title="Delete channels",
                                    warning="Deleted channels receive no more deliveries; a channel a rule still "
                                            "uses is kept.")
        if confirmation is not None:
            return confirmation
        for_each_selected(self, request, queryset.filter(deleted_at__isnull=True),
                          lambda channel: channel_services.channel_delete(channel_id=channel.pk), done="Deleted {}.")
        return None


THRESHOLD_KINDS = [
    (ThresholdType.USAGE_PERCENTAGE, "usage reaches (% of the allowance)"),
    (ThresholdType.USAGE_VALUE, "usage reaches (units)"),
    (ThresholdType.BALANCE_VALUE, "the balance falls to (units)"),
    (ThresholdType.PERCENT, "usage reaches (% of the allowance; older type)"),
    (ThresholdType.NUMBER, "usage reaches (units; older type)"),
]


class ThresholdsWidget(forms.Widget):
    template_name = "admin/notifications/widgets/thresholds.html"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        rows = [(t["type"], t["value"]) if isinstance(t, dict) else t for t in value or []]
        context["widget"]["rows"] = rows + [("", "")] * max(1, 3 - len(rows))
        context["widget"]["types"] = THRESHOLD_KINDS
        return context

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[tuple[str, str]]:
        rows = zip(data.getlist(f"{name}__type"), data.getlist(f"{name}__value"), strict=False)
        return [(kind, value.strip()) for kind, value in rows if value.strip()]


class ThresholdsField(forms.Field):
    """Balance thresholds as rows of kind and value (the stored JSON list)."""

    widget = ThresholdsWidget

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[rule_services.Threshold]:
        thresholds = []
        for i, row in enumerate(value or []):
            kind, number = (row["type"], row["value"]) if isinstance(row, dict) else row
            try:
                thresholds.append(rule_services.Threshold(type=kind, value=Decimal(str(number))))
            except InvalidOperation as exc:
                raise forms.ValidationError(f"row {i + 1}: the value must be a number") from exc
        return thresholds


class RuleForm(forms.ModelForm):
    thresholds = ThresholdsField(help_text="Balance threshold rules only: when to notify, e.g. 80 % of usage.")
    metadata = KeyValueField()

    class Meta:
        model = NotificationRule
        fields = ["type", "name", "disabled", "channels", "features", "thresholds", "metadata"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.instance._state.adding and data.get("type") != self.instance.type:
            self.add_error("type", "a rule's type cannot change")
        data["parsed_thresholds"] = data.get("thresholds") or []
        try:
            data["thresholds"] = rule_services.validate_thresholds(data.get("type", ""), data["parsed_thresholds"])
        except DomainError as exc:
            self.add_error("thresholds", field_message(exc.detail))
        return data


@admin.register(NotificationRule)
class NotificationRuleAdmin(ServiceSaveMixin, TimesMixin, admin.ModelAdmin):
    form = RuleForm
    list_display = ["name", "type", "disabled", "channel_names", "created", "deleted"]
    list_filter = ["type", "disabled", happened_filter("deleted_at", "deleted")]
    search_fields = ["id", "name"]
    filter_horizontal = ["channels", "features"]
    readonly_fields = ["id", "created", "updated", "deleted"]
    actions = ["disable", "enable", "soft_delete", "send_test"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[NotificationRule]:
        return super().get_queryset(request).prefetch_related("channels")

    @admin.display(description="channels")
    def channel_names(self, obj: NotificationRule) -> str:
        return ", ".join(c.name for c in obj.channels.all())

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # rules are soft-deleted: their events keep pointing at them

    def save_model(self, request: HttpRequest, obj: NotificationRule, form: RuleForm, change: bool) -> None:
        d = form.cleaned_data
        kwargs = {
            "type": d["type"], "name": d["name"], "disabled": d["disabled"], "metadata": d.get("metadata"),
            "channel_ids": [c.pk for c in d["channels"]], "feature_refs": [f.pk for f in d["features"]],
            "thresholds": d["parsed_thresholds"],
        }
        saved = rule_services.rule_update(rule_id=obj.pk, **kwargs) if change else rule_services.rule_create(**kwargs)
        obj.pk = saved.pk

    def save_related(self, request: HttpRequest, form: RuleForm, formsets: Any, change: bool) -> None:
        """The service already set channels and features."""

    @admin.action(description="Disable selected rules")
    def disable(self, request: HttpRequest, queryset: QuerySet[NotificationRule]) -> None:
        for_each_selected(self, request, queryset.filter(deleted_at__isnull=True),
                          lambda r: rule_services.rule_set_disabled(rule_id=r.pk, disabled=True), done="Disabled {}.")

    @admin.action(description="Enable selected rules")
    def enable(self, request: HttpRequest, queryset: QuerySet[NotificationRule]) -> None:
        for_each_selected(self, request, queryset.filter(deleted_at__isnull=True),
                          lambda r: rule_services.rule_set_disabled(rule_id=r.pk, disabled=False), done="Enabled {}.")

    @admin.action(description="Delete selected rules")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[NotificationRule]) -> HttpResponse | None:
        confirmation = confirm_bulk(self, request, queryset, action="soft_delete", title="Delete rules",
                                    warning="Deleted rules send no more notifications; their past events are kept.")
        if confirmation is not None:
            return confirmation
        for_each_selected(self, request, queryset.filter(deleted_at__isnull=True),
                          lambda rule: rule_services.rule_delete(rule_id=rule.pk), done="Deleted {}.")
        return None

    @admin.action(description="Send a test event")
    def send_test(self, request: HttpRequest, queryset: QuerySet[NotificationRule]) -> None:
        for_each_selected(self, request, queryset.filter(deleted_at__isnull=True),
                          lambda rule: rule_test(rule_id=rule.pk), done="Queued a test event for {}.")


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryInline(TimesMixin, ReadOnlyInline):
    model = NotificationDelivery
    fields = ["channel", "state", "reason", "attempt_count", "next_attempt", "updated", "attempt_log"]
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[NotificationDelivery]:
        return super().get_queryset(request).select_related("channel").prefetch_related("attempts")

    @admin.display(description="attempts")
    def attempt_log(self, obj: NotificationDelivery) -> str:
        return format_html_join(
            "\n", "<div>{} {} HTTP {} ({} ms)</div>",
            ((when(a.timestamp), a.state, a.status_code or "-", a.duration_ms)
             for a in obj.attempts.all()),
        )


def _resend(request: HttpRequest, pairs: dict[str, list[str] | None]) -> None:
    for event_id, channel_ids in pairs.items():
        event_services.event_resend(event_id=event_id, channel_ids=channel_ids)
    messages.success(request, f"Resending {len(pairs)} event(s).")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(NotificationEvent)
class NotificationEventAdmin(TimesMixin, ReadOnlyAdmin):
    """An event reads as what it is about (the invoice or the entitlement, linked to their pages) and the webhook
    body it sent, pretty-printed in a collapsible block."""

    list_display = ["created", "type", "rule", "about", "delivery_states"]
    list_filter = ["type", "deliveries__state", "created_at"]
    search_fields = ["id", "subject_key", "feature_key", "entitlement_id", "invoice_id", "rule__name"]
    list_select_related = ["rule"]
    date_hierarchy = "created_at"
    inlines = [DeliveryInline]
    actions = ["resend"]
    fields = ["type", "rule", "created", "about", "subject_key", "test_event", "payload", "id"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[NotificationEvent]:
        invoice = Invoice.objects.filter(pk=OuterRef("invoice_id"))
        entitlement = Entitlement.objects.filter(pk=OuterRef("entitlement_id"))
        return super().get_queryset(request).prefetch_related("deliveries").annotate(
            invoice_number=Subquery(invoice.values("number")[:1]),
            invoice_customer=Subquery(invoice.values("customer__name")[:1]),
            entitlement_customer=Subquery(entitlement.values("customer__name")[:1]),
        )

    @admin.display(description="about")
    def about(self, event: NotificationEvent) -> str:
        """The invoice or entitlement (a link to its page), and whose; a test event's sample is in no table."""
        if event.invoice_id:
            if event.invoice_number is None:
                return f"invoice {event.invoice_id} (a sample, not in the database)"
            return format_html('invoice <a href="{}">{}</a> of {}',
                               reverse("admin:billing_invoice_change", args=[event.invoice_id]),
                               event.invoice_number, event.invoice_customer)
        if event.entitlement_id:
            if event.entitlement_customer is None:
                return f"entitlement to {event.feature_key} (a sample, not in the database)"
            return format_html('entitlement to <a href="{}">{}</a> of {}',
                               reverse("admin:entitlements_entitlement_change", args=[event.entitlement_id]),
                               event.feature_key, event.entitlement_customer)
        return "—"

    @admin.display(description="test event")
    def test_event(self, event: NotificationEvent) -> str:
        if event.annotations.get(TEST_ANNOTATION):
            return "yes: sent by “Send a test event”, about sample data"
        return "no"

    @admin.display(description="webhook body")
    def payload(self, event: NotificationEvent) -> str:
        """The JSON sent to the channels, indented; numbers exactly as sent."""
        try:
            body = orjson.dumps(json.loads(event.payload_json, parse_float=orjson.Fragment),
                                option=orjson.OPT_INDENT_2).decode()
        except ValueError:
            body = event.payload_json
        return format_html('<details class="om-payload"><summary>The JSON sent to the channels ({} bytes)</summary>'
                           '<pre class="om-json">{}</pre></details>', len(event.payload_json.encode()), body)

    @admin.display(description="deliveries")
    def delivery_states(self, obj: NotificationEvent) -> str:
        return ", ".join(d.get_state_display().lower() for d in obj.deliveries.all()) or "-"

    @admin.action(description="Resend to all channels")
    def resend(self, request: HttpRequest, queryset: QuerySet[NotificationEvent]) -> None:
        _resend(request, {e.pk: None for e in queryset})


class AttemptInline(ReadOnlyInline):
    model = NotificationDeliveryAttempt
    classes = ("om-history",)
    fields = ["at", "state", "url", "status_code", "duration_ms", "response_body"]
    readonly_fields = fields

    @admin.display(description="at")
    def at(self, attempt: NotificationDeliveryAttempt) -> str:
        return when(attempt.timestamp)


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(TimesMixin, ReadOnlyAdmin):
    list_display = ["event", "channel", "state", "attempt_count", "next_attempt", "reason", "updated"]
    list_filter = ["state", "channel"]
    search_fields = ["event__id", "channel__name", "reason"]
    list_select_related = ["event", "channel"]
    inlines = [AttemptInline]
    actions = ["resend"]
    fields = ["event", "channel", "state", "reason", "attempt_count", "round_start", "next_attempt", "updated"]
    readonly_fields = fields

    @admin.action(description="Resend to these channels")
    def resend(self, request: HttpRequest, queryset: QuerySet[NotificationDelivery]) -> None:
        pairs: dict[str, list[str] | None] = {}
        for delivery in queryset:
            pairs.setdefault(delivery.event_id, []).append(delivery.channel_id)
        _resend(request, pairs)
