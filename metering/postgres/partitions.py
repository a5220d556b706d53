"""Monthly partitions of the event table (`metering_event`, partitioned by range of `time`, UTC months).

Ingest never fails for want of a partition: `partitions_ensure` creates the months a batch needs before it is
stored (late and future events included), and the maintenance job creates the next months ahead of time. Which
months exist is remembered per process, so a batch of known months costs no extra round trip; when a remembered
month was dropped meanwhile (retention, or a rolled-back test transaction), the insert fails and is retried once
after creating it (`metering.postgres.store`).

A partition is created empty and then attached: ATTACH takes a SHARE UPDATE EXCLUSIVE lock on the event table,
which neither ingest nor queries wait for (CREATE TABLE … PARTITION OF would take an ACCESS EXCLUSIVE one).
"""

import datetime as dt
import re
from collections.abc import Callable, Iterable

from django.db import connection, transaction
from psycopg import sql

Month = dt.date  # the first day of a UTC month

PARTITION_LOCK = 0x6F6D5F70617274  # "om_part": one process creating or dropping partitions at a time
AHEAD_MONTHS = 2  # the maintenance job keeps this month and the next two ready
_NAME_RE = re.compile(r"^metering_event_y(\d{4})m(\d{2})$")

_known: set[Month] = set()

PARTITIONS_SQL = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'metering_event'::regclass
"""


def month_of(moment: dt.datetime) -> Month:
    """The UTC month of a time."""
    if moment.tzinfo is not dt.UTC:  # ingest's times are UTC already
        moment = moment.astimezone(dt.UTC)
    return dt.date(moment.year, moment.month, 1)


def next_month(month: Month) -> Month:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: Month) -> str:
    return f"metering_event_y{month.year:04d}m{month.month:02d}"


def month_start(month: Month) -> dt.datetime:
    return dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)


def month_end(month: Month) -> str:
    """The first instant after the month, as PostgreSQL reads it: December 9999 ends in the year 10000, which
    Python's dates do not reach."""
    year, index = divmod(month.year * 12 + month.month, 12)  # the next month, 0-based
    return f"{year:04d}-{index + 1:02d}-01 00:00:00+00"


def partitions() -> list[Month]:
    """The months that have a partition, oldest first."""
    with connection.cursor() as cur:
        cur.execute(PARTITIONS_SQL)
        names = [name for (name,) in cur.fetchall()]
    return sorted(dt.date(int(m[1]), int(m[2]), 1) for m in map(_NAME_RE.match, names) if m)


def partitions_ensure(months: Iterable[Month]) -> None:
    """Create the partitions of `months` that do not exist yet (safe with concurrent callers)."""
    missing = set(months) - _known
    if not missing:
        return
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
        existing = set(partitions())
        for month in sorted(missing - existing):
            name = sql.Identifier(partition_name(month))
            cur.execute(sql.SQL("CREATE TABLE {} (LIKE metering_event INCLUDING DEFAULTS)").format(name))
            cur.execute(
                sql.SQL("ALTER TABLE metering_event ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    name, sql.Literal(month_start(month)), sql.Literal(month_end(month))
                )
            )
    _known.update(existing | missing)


def partitions_forget() -> None:
    """Forget which months exist (after a failed insert: one of them was dropped)."""
    _known.clear()


def partitions_ahead(*, at: dt.datetime) -> None:
    """The maintenance job: this month and the next `AHEAD_MONTHS` ready before any event needs them."""
    month = month_of(at)
    months = [month]
    for _ in range(AHEAD_MONTHS):
        month = next_month(month)
        months.append(month)
    partitions_ensure(months)


def partition_drop(month: Month, *, unless: Callable[[], bool]) -> bool:
    """Drop a month's events unless `unless()` holds once the event table is locked (no ingest runs meanwhile);
    returns whether it was dropped. The lock is held for a moment; ingest queued behind it waits at most
    `lock_timeout`, after which the drop fails (psycopg's LockNotAvailable) and a later run tries again."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL lock_timeout = '2s'")
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
        if month not in partitions():
            return False
        cur.execute("LOCK TABLE metering_event IN ACCESS EXCLUSIVE MODE")
        if unless():
            return False
        name = sql.Identifier(partition_name(month))
        cur.execute(sql.SQL("ALTER TABLE metering_event DETACH PARTITION {}").format(name))
        cur.execute(sql.SQL("DROP TABLE {}").format(name))
    _known.discard(month)
    return True
