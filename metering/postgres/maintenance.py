"""The event store's upkeep (the `metering.events_maintain` job): months ready ahead of time, expired de-duplication
keys purged, and, when `OPENMETER_EVENTS_RETENTION_DAYS` is set, whole partitions of events dropped once nothing
needs them.

A partition (a month, or a coarse range of months: metering/postgres/partitions.py) is dropped only when
  - its range ended at least the retention period ago;
  - every event of it is folded (none pending) and no meter is being (re)built from the events;
  - no app above metering still needs it (`metering.retention`: billing, until every invoice covering it is issued);
  - and every older partition could be dropped too (oldest first).
The rollups keep the usage: queries and invoices read them as before. The pending check runs with the event
table locked, so an event arriving late into the range either comes before (the partition stays) or after the
drop (a partition is created again for it and the event counted in it).
"""

import datetime as dt
import functools

import psycopg
from django.conf import settings
from django.db import OperationalError, connection

from metering import retention
from metering.models import Meter
from metering.postgres.partitions import Span, partition_drop, partitions, partitions_ahead
from metering.postgres.store import keys_purge


def events_maintain(*, at: dt.datetime) -> dict[str, int]:
    split = partitions_ahead(at=at)
    return {
        "months split off coarse partitions": split,
        "de-duplication keys purged": keys_purge(at=at),
        "partitions of events dropped": retention_apply(at=at),
    }


def retention_cutoff(*, at: dt.datetime) -> dt.datetime | None:
    """Partitions ending at or before this time may be dropped (None: retention is off)."""
    days = settings.OPENMETER_EVENTS_RETENTION_DAYS
    if not days:
        return None
    cutoff = at - dt.timedelta(days=days)
    needed = retention.events_needed_since()
    return min(cutoff, needed) if needed is not None else cutoff


def retention_apply(*, at: dt.datetime) -> int:
    """Drop the partitions past the retention period that nothing needs any more; returns how many."""
    cutoff = retention_cutoff(at=at)
    if cutoff is None:
        return 0
    dropped = 0
    for span in partitions():
        end = span.end_time
        if end is None or end > cutoff or _rebuilding():
            break
        try:
            if not partition_drop(span, unless=functools.partial(_pending_in, span)):
                break
        except OperationalError as exc:
            if isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):
                break  # ingest or a long query held the table: the next run tries again
            raise
        dropped += 1
    return dropped


def _rebuilding() -> bool:
    """A meter being (re)built reads every stored event."""
    return Meter.objects.filter(deleted_at__isnull=True, backfill_cursor__isnull=False).exists()


def _pending_in(span: Span) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM metering_pendingevent WHERE time >= %s AND time < %s)",
            [span.start_time or "-infinity", span.end_time or "infinity"],
        )
        return cur.fetchone()[0]
