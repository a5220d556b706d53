"""The event store: where usage events live, and everything metering reads and writes there.

One interface (`EventStore`) for storing batches, keeping aggregates current, meter queries, usage ranges,
event lists and the subjects seen since a cursor; one backend per deployment, chosen by
`OPENMETER_EVENTS_BACKEND`:
  - `postgres` (`metering.postgres`, the default): events, the pending queue and per-meter rollups in PostgreSQL;
  - `clickhouse` (`metering.clickhouse`): events in a ClickHouse MergeTree table (`CLICKHOUSE_URL`).
Meters, subjects, customers, billing and everything else stay in PostgreSQL whatever the backend.

Nothing outside a backend reads the backends' tables. Positions in the event stream (event list cursors, the
subjects seen since a cursor) are opaque strings that only the backend that made them reads.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

import orjson
from django.conf import settings
from django.utils.module_loading import import_string

from metering.events.ingest import IngestBatch
from metering.models import Meter

BACKENDS = {
    "postgres": "metering.postgres.backend.PostgresEventStore",
    "clickhouse": "metering.clickhouse.backend.ClickHouseEventStore",
}

UTC = ZoneInfo("UTC")
RESERVED_GROUP_BY = ("subject", "customer_id")
Ranges = Sequence[tuple[dt.datetime, dt.datetime]]


@dataclass(frozen=True)
class QuerySpec:
    meter: Meter
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    window_size: str | None = None
    time_zone: ZoneInfo = UTC
    subjects: Sequence[str] | None = None
    group_by: Sequence[str] = ()
    # groupBy key → allowed values (exact match; `filterGroupBy` and feature filters)
    group_filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # subject → customer id, when the query groups or filters by customer
    subject_customers: Mapping[str, str] | None = None
    # groupBy key → FilterString object (`advancedMeterGroupByFilters`)
    advanced_filters: Mapping[str, Any] = field(default_factory=dict)
    # the caller read `meter` in this request, so its state need not be read again
    fresh_meter: bool = False


@dataclass(frozen=True)
class UsageRequest:
    """One `usage_ranges` question among many (`EventStore.usage_ranges_many`)."""

    meter: Meter
    subjects: Sequence[str]
    ranges: Ranges
    group_filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    advanced_filters: Mapping[str, Any] = field(default_factory=dict)


class Row(NamedTuple):
    """One result row: a tuple, since a query returns hundreds of them (a month of days, by group and subject)."""

    value: Decimal
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    subject: str | None
    customer_id: str | None
    group_by: dict[str, str | None]


@dataclass(frozen=True)
class StoredEvent:
    ref: str  # the backend's own reference of the event (for `event_readings`), opaque elsewhere
    id: str
    source: str
    type: str
    subject: str
    time: dt.datetime
    data: orjson.Fragment | None  # the event's `data` as JSON text, exact numbers
    ingested_at: dt.datetime
    customer_id: str | None = None
    validation_error: str | None = None


@dataclass(frozen=True)
class EventFilter:
    """`events.list` parameters (event time range, ingestion time range, partial id/subject), with the customers'
    filter already turned into subjects."""

    start: dt.datetime
    end: dt.datetime | None = None
    ingested_from: dt.datetime | None = None
    ingested_to: dt.datetime | None = None
    id_contains: str | None = None
    subject_contains: str | None = None
    subjects: Sequence[str] | None = None
    limit: int = 100


@dataclass(frozen=True)
class EventPage:
    events: list[StoredEvent]
    next_cursor: str | None  # opaque; None when this page is the last


@dataclass(frozen=True)
class MeterReading:
    """What a meter reads from one event: its value (None when the event has none, so the meter skips it; UNIQUE_COUNT
    meters read the distinct value as text) and its group-by values."""

    value: Decimal | str | None
    groups: dict[str, str | None]


class EventStore(Protocol):
    """A place where events are stored and aggregated. Every method is safe to call from any process."""

    # --- storing ---------------------------------------------------------------------------------------------------
    def store_batch(self, batch: IngestBatch) -> int:
        """Store a validated batch all-or-nothing, de-duplicated on (source, id); returns how many were new."""
        ...

    def json_path_valid(self, path: str) -> bool:
        """Whether the store can evaluate `path` (a meter's valueProperty or groupBy JSONPath)."""
        ...

    # --- keeping aggregates current ----------------------------------------------------------------------------------
    def aggregates_rebuild(self, *, meter: Meter) -> None:
        """The meter is new or its groupBy changed: (re)build its aggregates. Called inside the transaction that
        saves the meter; the build runs after the commit."""
        ...

    def aggregates_drop(self, *, meter: Meter) -> None:
        """The meter was deleted: drop what keeps its aggregates current, if that costs anything. Called inside
        the transaction that deletes the meter; the drop runs after the commit."""
        ...

    def aggregates_ready(self, *, meter: Meter) -> bool:
        """Whether the meter's aggregates are built (else its queries read raw events until they are)."""
        ...

    def aggregates_build(self, *, meter_id: str) -> None:
        """Run a meter's (re)build to its end (the `metering.backfill_meter` task)."""
        ...

    def aggregates_resume(self) -> int:
        """Finish every build whose task was lost; returns how many meters were built."""
        ...

    def aggregates_catch_up(self) -> int:
        """Fold newly stored events into the aggregates (the `metering.fold_pending` job); returns how many."""
        ...

    def aggregates_backlog(self) -> tuple[int, float]:
        """(events stored but not aggregated yet, age in seconds of the oldest of them; 0 when none)."""
        ...

    def events_maintain(self, *, at: dt.datetime) -> dict[str, int]:
        """The store's upkeep (the hourly `metering.events_maintain` job): storage made ready ahead of time, expired
        de-duplication keys purged, and, where the backend does it, events past `OPENMETER_EVENTS_RETENTION_DAYS`
        dropped; returns counts of what it did."""
        ...

    # --- meter queries and usage -------------------------------------------------------------------------------------
    def query(self, spec: QuerySpec) -> list[Row]:
        """A meter query (`meters.query`, the admin, the portal), rows ordered by window, subject, customer, groups."""
        ...

    def usage_ranges(
        self,
        *,
        meter: Meter,
        subjects: Sequence[str],
        ranges: Ranges,
        group_filters: Mapping[str, Sequence[str]] | None = None,
        advanced_filters: Mapping[str, Any] | None = None,
        fresh_meter: bool = False,
    ) -> list[Decimal]:
        """The meter's total for `subjects` over each [start, end) of `ranges`, in order (entitlement values, the
        customer hub): one round trip however many ranges."""
        ...

    def usage_ranges_many(self, requests: Sequence[UsageRequest]) -> list[list[Decimal]]:
        """`usage_ranges` of each request (any meters, subjects and filters), in order, in a number of round trips
        that does not grow with the requests (a page of entitlements in the back office)."""
        ...

    def usage_by_customer(
        self,
        *,
        meter: Meter,
        subject_customers: Mapping[str, str],
        start: dt.datetime,
        end: dt.datetime,
        group_filters: Mapping[str, Sequence[str]] | None = None,
        advanced_filters: Mapping[str, Any] | None = None,
    ) -> dict[str, Decimal]:
        """Invoice runs: the meter's total per customer (subject → customer id) over [start, end), in one query."""
        ...

    # --- events ------------------------------------------------------------------------------------------------------
    def events_list(self, *, filters: EventFilter) -> list[StoredEvent]:
        """`events.list`: newest first, with each event's validation error against the live meters."""
        ...

    def events_page(
        self, *, filter_spec: Mapping[str, Any], subjects: Sequence[str] | None, cursor: str | None, limit: int
    ) -> EventPage:
        """`events.listV2`: newest first, after the opaque `cursor` of the previous page; `filter_spec` holds the
        spec's `FilterString` / `FilterTime` objects of id, source, subject, type, time and ingestedAt."""
        ...

    def event_readings(self, *, meter: Meter, refs: Sequence[str]) -> dict[str, MeterReading]:
        """What the meter reads from each of some events (their `StoredEvent.ref`), as its queries read them."""
        ...

    def events_per_subject_since(self, start: dt.datetime) -> list[tuple[str, int]]:
        """(subject, number of events with a time from `start` on), by subject."""
        ...

    def subjects_since(self, cursor: str | None) -> tuple[list[str], str]:
        """The subjects of the events stored after the position `cursor` (None: from the start), and the position
        to pass next time. May repeat subjects of events seen before (callers are idempotent), never misses one."""
        ...

    def stream_position(self) -> str:
        """The position after the events stored so far (to skip them without reading their subjects)."""
        ...


_stores: dict[str, EventStore] = {}


def event_store() -> EventStore:
    """The configured backend (one instance per process)."""
    name = settings.OPENMETER_EVENTS_BACKEND
    store = _stores.get(name)
    if store is None:
        store = _stores[name] = import_string(BACKENDS[name])()
    return store


def json_fragment(text: str | None) -> orjson.Fragment | None:
    """Event data as the store wrote it (exact numbers), embedded as is in a JSON response."""
    return orjson.Fragment(text) if text is not None else None
