"""The ClickHouse event store behind `metering.event_store.EventStore` (OPENMETER_EVENTS_BACKEND=clickhouse).

Each meter's aggregates are kept current by ClickHouse itself, at insert (a materialized view per meter,
`metering.clickhouse.views`): nothing waits to be folded, and the fold job only purges expired de-duplication
keys. A meter's aggregates are built in the background when it is created or its groupBy changes (queries read
its raw events meanwhile), and dropped when it is deleted.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from metering.clickhouse import events, query, store, views
from metering.clickhouse.connection import schema_ensure
from metering.clickhouse.sql import json_path_keys
from metering.event_store import (
    EventFilter,
    EventPage,
    MeterReading,
    QuerySpec,
    Ranges,
    Row,
    StoredEvent,
    UsageRequest,
)
from metering.events.ingest import IngestBatch
from metering.models import Meter
from openmeter_site.core.broker import kick


class ClickHouseEventStore:
    name = "clickhouse"

    def __init__(self) -> None:
        schema_ensure()

    def store_batch(self, batch: IngestBatch) -> int:
        return store.insert_batch(batch)

    def json_path_valid(self, path: str) -> bool:
        return json_path_keys(path) is not None

    def aggregates_rebuild(self, *, meter: Meter) -> None:
        """Not ready from the commit on; built after it (`metering.resume_backfills` builds it if the kick is lost)."""
        views.rebuild_start(meter)
        self._build_on_commit(meter)

    def aggregates_drop(self, *, meter: Meter) -> None:
        """The meter's view stops costing inserts: the build task drops a deleted meter's view and table."""
        self._build_on_commit(meter)

    @staticmethod
    def _build_on_commit(meter: Meter) -> None:
        from metering.tasks import backfill_meter_task

        transaction.on_commit(lambda: kick(backfill_meter_task, meter.pk))

    def aggregates_ready(self, *, meter: Meter) -> bool:
        return bool(views.ready_tables([meter]))

    def aggregates_build(self, *, meter_id: str) -> None:
        views.build(meter_id)

    def aggregates_resume(self) -> int:
        return views.reconcile()

    def aggregates_catch_up(self) -> int:
        store.keys_purge(at=timezone.now())
        return 0

    def aggregates_backlog(self) -> tuple[int, float]:
        return 0, 0.0

    def events_maintain(self, *, at: dt.datetime) -> dict[str, int]:
        """ClickHouse makes its monthly partitions itself; the keys are purged here and by the fold job."""
        return {"de-duplication keys purged": store.keys_purge(at=at)}

    def query(self, spec: QuerySpec) -> list[Row]:
        return query.run_query(spec)

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
        return query.usage_ranges(meter=meter, subjects=subjects, ranges=ranges, group_filters=group_filters,
                                  advanced_filters=advanced_filters)

    def usage_ranges_many(self, requests: Sequence[UsageRequest]) -> list[list[Decimal]]:
        return query.usage_ranges_many(requests)

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
        if not subject_customers or start >= end:
            return {}
        spec = QuerySpec(meter=meter, start=start, end=end, subjects=list(subject_customers), group_by=("customer_id",),
                         group_filters=group_filters or {}, subject_customers=subject_customers,
                         advanced_filters=advanced_filters or {})
        return {r.customer_id: r.value for r in query.run_query(spec) if r.customer_id is not None}

    def events_list(self, *, filters: EventFilter) -> list[StoredEvent]:
        return events.events_list(filters=filters)

    def events_page(
        self, *, filter_spec: Mapping[str, Any], subjects: Sequence[str] | None, cursor: str | None, limit: int
    ) -> EventPage:
        return events.events_page(filter_spec=filter_spec, subjects=subjects, cursor=cursor, limit=limit)

    def event_readings(self, *, meter: Meter, refs: Sequence[str]) -> dict[str, MeterReading]:
        return events.event_readings(meter=meter, refs=refs)

    def events_per_subject_since(self, start: dt.datetime) -> list[tuple[str, int]]:
        return events.events_per_subject_since(start)

    def subjects_since(self, cursor: str | None) -> tuple[list[str], str]:
        return events.subjects_since(cursor)

    def stream_position(self) -> str:
        return events.stream_position()
