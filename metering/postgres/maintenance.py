"""The event store's upkeep (the `metering.events_maintain` job): months ready ahead of time, expired de-duplication
keys purged, and, when `OPENMETER_EVENTS_RETENTION_DAYS` is set, whole months of events dropped once nothing
needs them.

A month of events is dropped only when
  - it ended at least the retention period ago;
  - every event of it is folded (none pending) and no meter is being (re)built from the events;
  - no app above metering still needs it (`metering.retention`: billing, until every invoice covering it is issued);
  - and every older month could be dropped too (months go oldest first).
The rollups keep the month's usage: queries and invoices read them as before. The pending check runs with the
event table locked, so an event arriving late into the month either comes before (the month stays) or after the
drop (its month is created again and the event counted in it).
"""

import datetime as dt
import functools

import psycopg
from django.conf import settings
from django.db import OperationalError, connection

from metering import retention
from metering.models import Meter
from metering.postgres.partitions import Month, month_start, next_month, partition_drop, partitions, partitions_ahead
from metering.postgres.store import keys_purge


def events_maintain(*, at: dt.datetime) -> dict[str, int]:
    partitions_ahead(at=at)
    return {"de-duplication keys purged": keys_purge(at=at), "months of events dropped": retention_apply(at=at)}


def retention_cutoff(*, at: dt.datetime) -> dt.datetime | None:
    """Months ending at or before this time may be dropped (None: retention is off)."""
    days = settings.OPENMETER_EVENTS_RETENTION_DAYS
    if not days:
        return None
    cutoff = at - dt.timedelta(days=days)
    needed = retention.events_needed_since()
    return min(cutoff, needed) if needed is not None else cutoff


def retention_apply(*, at: dt.datetime) -> int:
    """Drop the months past the retention period that nothing needs any more; returns how many."""
    cutoff = retention_cutoff(at=at)
    if cutoff is None:
        return 0
    dropped = 0
    for month in partitions():
        if month_start(next_month(month)) > cutoff or _rebuilding():
            break
        try:
            if not partition_drop(month, unless=functools.partial(_pending_in, month)):
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


def _pending_in(month: Month) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM metering_pendingevent WHERE time >= %s AND time < %s)",
            [month_start(month), month_start(next_month(month))],
        )
        return cur.fetchone()[0]
