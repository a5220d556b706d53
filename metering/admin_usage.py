"""A meter's usage on its back-office page: a query form (period, window, time zone, group-by, customer) run through
`meter_query`, the service behind the API's `meters.query`, shown as a table and a server-side SVG chart."""

import dataclasses
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from django import forms
from django.utils import timezone
from django.utils.safestring import SafeString

from customers.models import Customer
from metering.meter_queries import MeterQueryOutput, MeterQueryParams, meter_query
from metering.models import Meter, MeterAggregation, WindowSize
from openmeter_site.admin_ui.charts import bar_chart
from openmeter_site.admin_ui.display import quantity_text
from openmeter_site.core.errors import DomainError
from openmeter_site.core.ids import is_ulid

MAX_ROWS = 1000
# values that add up across windows, subjects and groups (a sum of maxima or averages means nothing)
ADDITIVE = (MeterAggregation.SUM, MeterAggregation.COUNT)
# the longest period each window size is offered for (more windows than a page can show)
MAX_DAYS = {WindowSize.MINUTE: 2, WindowSize.HOUR: 62}
LABELS = {WindowSize.MINUTE: "%Y-%m-%d %H:%M", WindowSize.HOUR: "%Y-%m-%d %H:%M", WindowSize.DAY: "%Y-%m-%d %a",
          WindowSize.MONTH: "%Y-%m"}
CHART_LABELS = {WindowSize.MINUTE: "%H:%M", WindowSize.HOUR: "%d %H:%M", WindowSize.DAY: "%b %d",
                WindowSize.MONTH: "%b %Y"}


class MeterUsageForm(forms.Form):
    """A GET form on the meter's page; dates are days in the chosen time zone, both included."""

    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    window = forms.ChoiceField(required=False, label="Window", initial=WindowSize.DAY,
                               choices=[("", "whole period"), *WindowSize.choices])
    zone = forms.CharField(label="Time zone", max_length=64)
    group_by = forms.MultipleChoiceField(required=False, label="Group by", widget=forms.CheckboxSelectMultiple)
    customer = forms.CharField(required=False, label="Customer", help_text="key or id; its subjects only")

    def __init__(self, *args: Any, meter: Meter, **kwargs: Any) -> None:
        super().__init__(*args, prefix="usage", **kwargs)
        group_by = self.fields["group_by"]
        assert isinstance(group_by, forms.MultipleChoiceField)
        group_by.choices = [(key, key) for key in sorted(meter.group_by)] + [("subject", "subject")]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end, window = data.get("start"), data.get("end"), data.get("window")
        if start and end and end < start:
            self.add_error("end", "The period ends before it starts.")
        elif start and end and window in MAX_DAYS and (end - start).days >= MAX_DAYS[window]:
            self.add_error("window", f"{window.lower()} windows for at most {MAX_DAYS[window]} days; choose a "
                                     "larger window or a shorter period.")
        if data.get("customer"):
            data["customer_obj"] = self._customer(data["customer"])
        return data

    def _customer(self, text: str) -> Customer | None:
        live = Customer.objects.filter(deleted_at__isnull=True)
        found = (live.filter(pk=text.upper()).first() if is_ulid(text) else None) or live.filter(key=text).first()
        if found is None:
            self.add_error("customer", f"No customer with key or id {text!r}.")
        return found


def default_usage_query(zone: ZoneInfo) -> dict[str, Any]:
    """The last 30 days by day, in the operator's zone."""
    today = timezone.localtime(timezone.now(), zone).date()
    return {"usage-start": (today - dt.timedelta(days=29)).isoformat(), "usage-end": today.isoformat(),
            "usage-window": WindowSize.DAY, "usage-zone": str(zone)}


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone)


def _all_windows(start: dt.date, end: dt.date, window: str, zone: ZoneInfo) -> list[dt.datetime]:
    """Every DAY or MONTH window of the period, so that days without usage show as zero (finer windows: those
    with usage only)."""
    if window == WindowSize.DAY:
        return [_local_midnight(start + dt.timedelta(days=i), zone) for i in range((end - start).days + 1)]
    if window == WindowSize.MONTH:
        first, months = start.replace(day=1), []
        while first <= end:
            months.append(_local_midnight(first, zone))
            first += relativedelta(months=1)
        return months
    return []


def run_usage_query(meter: Meter, form: MeterUsageForm) -> dict[str, Any]:
    """The query's table and chart; a service rejection is put on the form (an error message, no result)."""
    d = form.cleaned_data
    customer = d.get("customer_obj")
    try:
        params = MeterQueryParams.from_request({
            "windowTimeZone": d["zone"], "windowSize": d["window"] or None, "groupBy": d["group_by"],
            "filterCustomerId": [customer.pk] if customer else None,
        })
        zone = params.time_zone
        start, end = _local_midnight(d["start"], zone), _local_midnight(d["end"] + dt.timedelta(days=1), zone)
        output = meter_query(meter=meter, params=dataclasses.replace(params, start=start, end=end))
    except DomainError as exc:
        form.add_error(None, exc.detail)
        return {}
    additive = meter.aggregation in ADDITIVE
    return {
        "columns": _columns(output), "rows": _rows(output, d["window"], zone)[:MAX_ROWS],
        "row_count": len(output.rows), "max_rows": MAX_ROWS,
        "total": quantity_text(sum((r.value for r in output.rows), Decimal(0))) if additive else None,
        "chart": _chart(meter, output, d, zone) if additive or len(_columns(output)) == 1 else None,
    }


def _columns(output: MeterQueryOutput) -> list[str]:
    names = ["window"]
    names += ["subject"] if output.by_subject else []
    names += ["customer"] if output.by_customer else []
    return [*names, *output.group_keys]


def _rows(output: MeterQueryOutput, window: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    customers = dict(Customer.objects.filter(pk__in={r.customer_id for r in output.rows if r.customer_id})
                     .values_list("pk", "name"))
    rows = []
    for r in sorted(output.rows, key=lambda r: (r.window_start or dt.datetime.min.replace(tzinfo=dt.UTC),
                                                r.subject or "", *(str(r.group_by.get(k)) for k in output.group_keys))):
        cells = [r.window_start.astimezone(zone).strftime(LABELS[WindowSize(window)]) if window and r.window_start
                 else "whole period"]
        cells += [r.subject or "—"] if output.by_subject else []
        cells += [customers.get(r.customer_id or "", r.customer_id or "—")] if output.by_customer else []
        cells += [r.group_by.get(k) or "—" for k in output.group_keys]
        rows.append({"cells": cells, "value": quantity_text(r.value)})
    return rows


def _chart(meter: Meter, output: MeterQueryOutput, d: dict[str, Any], zone: ZoneInfo) -> SafeString | None:
    window = d["window"]
    if not window:
        return None
    totals: dict[dt.datetime, Decimal] = defaultdict(Decimal)
    for window_start in _all_windows(d["start"], d["end"], window, zone):
        totals[window_start] = Decimal(0)
    for r in output.rows:
        if r.window_start is not None:
            totals[r.window_start.astimezone(zone)] += r.value
    starts = sorted(totals)
    labels = [s.strftime(CHART_LABELS[WindowSize(window)]) for s in starts]
    return bar_chart(labels, [totals[s] for s in starts],
                     title=f"{meter.name} ({meter.aggregation}) per {window.lower()}, {zone}")
