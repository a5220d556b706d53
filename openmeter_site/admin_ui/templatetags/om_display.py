"""Template filters for the back office's money, quantities and times: `{% load om_display %}`, then
`{{ invoice.total|money:invoice.currency }}`, `{{ value.balance|quantity }}`, `{{ grant.expires_at|when }}`,
`{{ sub.billing_cadence|duration }}`."""

import datetime as dt
from decimal import Decimal

from django import template
from django.utils.safestring import SafeString

from openmeter_site.admin_ui import display

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> SafeString:
    return display.money(amount, currency)


@register.filter
def quantity(value: Decimal | None) -> SafeString:
    return display.quantity(value)


@register.filter
def when(value: dt.datetime | None) -> SafeString:
    return display.when(value)


@register.filter
def duration(value: str | None) -> str:
    return display.duration_text(value)
