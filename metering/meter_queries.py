"""The meter query API's rules on top of the event store's query: parameter validation, customers, progress, CSV."""

import csv
import datetime as dt
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from metering import progress
from metering.event_store import RESERVED_GROUP_BY, QuerySpec, Row, event_store
from metering.models import Meter, Subject
from metering.selectors import subject_customers_for
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.time import format_rfc3339, parse_time_zone


@dataclass(frozen=True)
class MeterQueryParams:
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    window_size: str | None = None
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    subjects: Sequence[str] = ()
    customer_ids: Sequence[str] = ()
    filter_group_by: Mapping[str, Sequence[str]] = field(default_factory=dict)
    advanced_filters: Mapping[str, Any] = field(default_factory=dict)
    group_by: Sequence[str] = ()
    client_id: str | None = None

    @classmethod
    def from_request(cls, data: Mapping[str, Any]) -> "MeterQueryParams":
        start, end = data.get("from"), data.get("to")
        if start is not None and end is not None and start >= end:
            raise InvalidInput("from: must be before to" if start > end else "from and to must not be equal")
        if data.get("filterGroupBy") and data.get("advancedMeterGroupByFilters"):
            raise InvalidInput("filterGroupBy and advancedMeterGroupByFilters cannot be used together")
        return cls(
            start=start,
            end=end,
            window_size=data.get("windowSize"),
            time_zone=parse_time_zone(data.get("windowTimeZone")),
            subjects=data.get("subject") or (),
            customer_ids=data.get("filterCustomerId") or (),
            filter_group_by=data.get("filterGroupBy") or {},
            advanced_filters=data.get("advancedMeterGroupByFilters") or {},
            group_by=data.get("groupBy") or (),
            client_id=data.get("clientId"),
        )


@dataclass(frozen=True)
class MeterQueryOutput:
    rows: list[Row]
    group_keys: list[str]
    by_subject: bool
    by_customer: bool

    def to_csv(self) -> bytes:
        """`window_start,window_end[,subject,subject_display_name][,customer_id],<groupBy keys…>,value`."""
        names = {}
        if self.by_subject:
            subjects = {r.subject for r in self.rows if r.subject is not None}
            names = dict(Subject.objects.filter(key__in=subjects).values_list("key", "display_name"))
        header = ["window_start", "window_end"]
        header += ["subject", "subject_display_name"] if self.by_subject else []
        header += ["customer_id"] if self.by_customer else []
        header += [*self.group_keys, "value"]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in self.rows:
            line = [format_rfc3339(row.window_start), format_rfc3339(row.window_end)]
            if self.by_subject:
                subject = row.subject or ""
                line += [subject, names.get(subject) or ""]
            line += [row.customer_id] if self.by_customer else []
            line += [row.group_by.get(k) or "" for k in self.group_keys]
            line.append(format(row.value, "f"))
            writer.writerow(line)
        return out.getvalue().encode()


def _group_by(meter: Meter, params: MeterQueryParams) -> list[str]:
    group_by = list(dict.fromkeys(params.group_by))
    for key in group_by:
        if key not in meter.group_by and key not in RESERVED_GROUP_BY:
            raise InvalidInput(f"invalid group by: {key}")
    if "customer_id" in group_by and not params.customer_ids:
        raise InvalidInput("invalid group by: customer_id requires filterCustomerId")
    for key in [*params.filter_group_by, *params.advanced_filters]:
        if key not in meter.group_by:
            raise InvalidInput(f"invalid group by filter: {key} is not a groupBy key of meter {meter.slug}")
    if params.subjects and "subject" not in group_by:
        group_by.append("subject")
    if params.customer_ids and "customer_id" not in group_by:
        group_by.append("customer_id")
    return group_by


def meter_query(*, meter: Meter, params: MeterQueryParams) -> MeterQueryOutput:
    """`meters.query`: validate against the meter, resolve customers, run, and record progress for `clientId`.
    `meter` was read in this request (as every caller of the meter functions here does)."""
    group_by = _group_by(meter, params)
    subject_customers = subject_customers_for(customer_ids=params.customer_ids) if params.customer_ids else None
    subjects = list(params.subjects) or (list(subject_customers) if subject_customers is not None else None)
    spec = QuerySpec(
        meter=meter,
        start=params.start,
        end=params.end,
        window_size=params.window_size,
        time_zone=params.time_zone,
        subjects=subjects,
        group_by=group_by,
        group_filters=params.filter_group_by,
        subject_customers=subject_customers,
        advanced_filters=params.advanced_filters,
        fresh_meter=True,
    )
    if not params.client_id:
        rows = event_store().query(spec)
    else:
        progress.progress_set(params.client_id, total=1, success=0)
        try:
            rows = event_store().query(spec)
        except Exception:
            progress.progress_set(params.client_id, total=1, success=0, failed=1)
            raise
        progress.progress_set(params.client_id, total=1, success=1)
    keys = [k for k in group_by if k not in RESERVED_GROUP_BY]
    return MeterQueryOutput(rows, keys, "subject" in group_by, "customer_id" in group_by)


def meter_group_by_values(*, meter: Meter, key: str, start: dt.datetime | None, end: dt.datetime | None) -> list[str]:
    """Distinct values of one groupBy key (default window: the last 24 hours)."""
    if key not in meter.group_by:
        raise InvalidInput(f"invalid group by: {key}")
    if start is None and end is None:
        start = timezone.now() - dt.timedelta(hours=24)
    rows = event_store().query(QuerySpec(meter=meter, start=start, end=end, group_by=[key], fresh_meter=True))
    return sorted({value for r in rows if (value := r.group_by[key]) is not None})


def meter_subjects(*, meter: Meter, start: dt.datetime | None, end: dt.datetime | None) -> list[str]:
    rows = event_store().query(QuerySpec(meter=meter, start=start, end=end, group_by=["subject"], fresh_meter=True))
    return sorted({r.subject for r in rows if r.subject is not None})
