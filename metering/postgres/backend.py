"""The PostgreSQL event store behind `metering.event_store.EventStore` (OPENMETER_EVENTS_BACKEND=postgres)."""

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, connection, transaction

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
from metering.postgres import events, fold, maintenance, query, store, usage
from openmeter_site.core.broker import kick


class PostgresEventStore:
    name = "postgres"

    def store_batch(self, batch: IngestBatch) -> int:
        return store.insert_batch(batch)

    def json_path_valid(self, path: str) -> bool:
        """Ask PostgreSQL (inside a savepoint: a bad path must not break the surrounding transaction)."""
        try:
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute("SELECT %s::jsonpath", [path])
        except DatabaseError:
            return False
        return True

    def aggregates_rebuild(self, *, meter: Meter) -> None:
        """Drop the meter's rollups (queries read raw events meanwhile) and backfill them after the commit; the
        meter row records the build (`backfill_cursor`), so `metering.resume_backfills` finishes it when the
        kick is lost (broker down)."""
        from metering.tasks import backfill_meter_task

        fold.rollups_rebuild_start(meter=meter)
        transaction.on_commit(lambda: kick(backfill_meter_task, meter.pk))

    def aggregates_drop(self, *, meter: Meter) -> None:
        """A deleted meter's rollups cost nothing: folds and queries skip deleted meters; they are kept."""

    def aggregates_ready(self, *, meter: Meter) -> bool:
        return meter.backfill_cursor is None

    def aggregates_build(self, *, meter_id: str) -> None:
        fold.backfill(meter_id=meter_id)

    def aggregates_resume(self) -> int:
        meter_ids = list(
            Meter.objects.filter(deleted_at__isnull=True, backfill_cursor__isnull=False).values_list("pk", flat=True)
        )
        for meter_id in meter_ids:
            fold.backfill(meter_id=meter_id)
        return len(meter_ids)

    def aggregates_catch_up(self) -> int:
        return fold.fold_backlog()

    def aggregates_backlog(self) -> tuple[int, float]:
        return events.fold_backlog()

    def events_maintain(self, *, at: dt.datetime) -> dict[str, int]:
        return maintenance.events_maintain(at=at)

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
        return usage.meter_usage_ranges(meter=meter, subjects=subjects, ranges=ranges, group_filters=group_filters,
                                        advanced_filters=advanced_filters, fresh_meter=fresh_meter)

    def usage_ranges_many(self, requests: Sequence[UsageRequest]) -> list[list[Decimal]]:
        return usage.meter_usage_ranges_many(requests)

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
        return query.meter_usage_by_customer(meter=meter, subject_customers=subject_customers, start=start, end=end,
                                             group_filters=group_filters, advanced_filters=advanced_filters)

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
