"""Read queries shared by the API, the admin and other apps."""

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from customers.models import Customer, CustomerSubject
from metering.event_store import EventFilter, EventPage, StoredEvent, event_store
from metering.models import Meter
from openmeter_site.core.errors import InvalidInput, NotFound
from openmeter_site.core.ids import is_ulid
from openmeter_site.core.sql import fetch_prepared

# --- meters ---------------------------------------------------------------------------------------------------------


_METER_FIELDS = list(Meter._meta.concrete_fields)
_METER_COLUMNS = [f.column for f in _METER_FIELDS if f.column is not None]  # all of them: concrete fields have one
_METER_SQL = (
    f"SELECT {', '.join(_METER_COLUMNS)} FROM metering_meter "
    "WHERE deleted_at IS NULL AND (slug = %(slug)s OR id = %(id)s) ORDER BY slug LIMIT 1"
)


def meter_get(*, id_or_slug: str) -> Meter:
    """A live meter by ULID or slug. A prepared statement: every meter endpoint starts here, and compiling the ORM
    query costs more than running it."""
    pk = id_or_slug.upper() if is_ulid(id_or_slug) else None
    rows = fetch_prepared(_METER_SQL, {"slug": id_or_slug, "id": pk})
    if not rows:
        raise NotFound(f"meter not found: {id_or_slug}")
    values = []
    for f, value in zip(_METER_FIELDS, rows[0], strict=True):
        for convert in f.get_db_converters(connection):  # JSON columns arrive as text
            value = convert(value, f, connection)
        values.append(value)
    return Meter.from_db(connection.alias, [f.attname for f in _METER_FIELDS], values)


def meter_list_qs(*, include_deleted: bool = False) -> QuerySet[Meter]:
    qs = Meter.objects.all()
    return qs if include_deleted else qs.filter(deleted_at__isnull=True)


# --- customers (usage attribution: customer key + usageAttribution.subjectKeys) --------------------------------------


def subject_customers_for(*, customer_ids: Sequence[str]) -> dict[str, str]:
    """subject → customer id for the given live customers; an unknown id is a 400."""
    customers = {c.pk: c for c in Customer.objects.filter(pk__in=customer_ids, deleted_at__isnull=True)}
    missing = [c for c in customer_ids if c not in customers]
    if missing:
        raise InvalidInput(f"customer not found: {', '.join(missing)}")
    mapping = {c.key: c.pk for c in customers.values() if c.key}
    mapping.update(
        CustomerSubject.objects.filter(customer_id__in=customers, deleted_at__isnull=True).values_list(
            "subject_key", "customer_id"
        )
    )
    return mapping


def customers_of_subjects(subjects: Iterable[str]) -> dict[str, str]:
    """subject → id of the live customer it is attributed to (explicit subject keys win over customer keys)."""
    keys = list(set(subjects))
    if not keys:
        return {}
    mapping = {
        key: pk
        for key, pk in Customer.objects.filter(key__in=keys, deleted_at__isnull=True).values_list("key", "pk")
        if key is not None  # always, given key__in; the column is nullable
    }
    mapping.update(
        CustomerSubject.objects.filter(
            subject_key__in=keys, deleted_at__isnull=True, customer__deleted_at__isnull=True
        ).values_list("subject_key", "customer_id")
    )
    return mapping


# --- events (stored in the event store) -----------------------------------------------------------------------

MAX_LOOKBACK = dt.timedelta(days=32)
DEFAULT_LOOKBACK = dt.timedelta(hours=72)


def event_list(*, filters: EventFilter, customer_ids: Sequence[str] = (), now: dt.datetime) -> list[StoredEvent]:
    """`events.list`: newest first, each with its customer and validation error."""
    if filters.start < now - MAX_LOOKBACK:
        raise InvalidInput("from: must be within the last 32 days")
    if filters.ingested_from is not None and filters.ingested_from < now - MAX_LOOKBACK:
        raise InvalidInput("ingestedAtFrom: must be within the last 32 days")
    if filters.end is not None and filters.end < filters.start:
        raise InvalidInput("to: must not be before from")
    if customer_ids:
        filters = replace(filters, subjects=list(subject_customers_for(customer_ids=customer_ids)))
    return _with_customers(event_store().events_list(filters=filters))


def event_list_v2(*, filter_spec: Mapping[str, Any], cursor: str | None, limit: int) -> EventPage:
    """`events.listV2`: newest first, after the opaque cursor of the previous page."""
    spec = dict(filter_spec)
    customer_filter = spec.pop("customerId", None)
    subjects = None
    if customer_filter is not None:
        ids = customer_filter.get("$in") if isinstance(customer_filter, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InvalidInput('filter.customerId: expected {"$in": [customer ids]}')
        subjects = list(subject_customers_for(customer_ids=ids))
    page = event_store().events_page(filter_spec=spec, subjects=subjects, cursor=cursor, limit=limit)
    return EventPage(_with_customers(page.events), page.next_cursor)


def _with_customers(events: list[StoredEvent]) -> list[StoredEvent]:
    """Add the customer each event is attributed to."""
    if not events:
        return events
    customers = customers_of_subjects(e.subject for e in events)
    return [replace(e, customer_id=customers.get(e.subject)) for e in events]


# --- the fold's lag (operators watch it on /metrics) ----------------------------------------------------------------


def fold_backlog() -> tuple[int, float]:
    """(events stored but not aggregated yet, age in seconds of the oldest of them; 0 when none)."""
    return event_store().aggregates_backlog()
