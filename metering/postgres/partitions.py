"""Partitions of the event table (`metering_event`, partitioned by range of `time`, UTC months): one per month
around now, coarse ones elsewhere, so that the number of partitions stays small however the events' times spread.

- The window: the previous month, this month and the next `AHEAD_MONTHS`. A month inside it gets a partition of
  its own, made ahead of time by the maintenance job (`partitions_ahead`) or by ingest when a batch needs it.
- A time outside the window that no partition covers gets ONE partition for the whole free range around it, up
  to the window: from the end of the partition before it (or the beginning of time, MINVALUE) to the start of
  the partition after it (or the end of time, MAXVALUE). A batch whose events are spread over hundreds of months
  therefore makes at most the window's months plus one partition per gap between the existing ones (one before
  them, one after, and the gaps retention or an older version left), and a second such batch makes none.
- When the window reaches a month that a coarse partition covers (someone stored events months ahead), the
  maintenance job splits that month off (`partition_split`): the coarse partition is detached, the month's rows
  move to a partition of their own and the rest is attached again with narrower bounds. It holds the event table
  exclusively while it does (a scan of the coarse partition: normally a few far-future events).
Retention drops whole partitions, a coarse one once its whole range is past the retention period
(metering/postgres/maintenance.py).

Ingest never fails for want of a partition: `partitions_ensure` creates what a batch needs before it is stored.
Which ranges exist is remembered per process, so a batch of known months costs no extra round trip; when a
remembered partition was dropped meanwhile (retention, or a rolled-back test transaction), the insert fails and
is retried once after creating it (`metering.postgres.store`).

A partition is created empty and then attached: ATTACH takes a SHARE UPDATE EXCLUSIVE lock on the event table,
which neither ingest nor queries wait for (CREATE TABLE … PARTITION OF would take an ACCESS EXCLUSIVE one).
A partition's name says its range: `metering_event_y2026m03` one month, `metering_event_y2019m05_y2026m02` from
May 2019 to February 2026 exclusive, `min` and `max` for the beginning and the end of time.
"""

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psycopg
from django.db import OperationalError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from psycopg import sql

Month = dt.date  # the first day of a UTC month

PARTITION_LOCK = 0x6F6D5F70617274  # "om_part": one process creating or dropping partitions at a time
AHEAD_MONTHS = 2  # the maintenance job keeps this month and the next two ready
BEHIND_MONTHS = 1  # late events of the previous month still get a partition of that month
_NAME_RE = re.compile(r"^metering_event_(min|y(\d{4,5})m(\d{2}))(?:_(max|y(\d{4,5})m(\d{2})))?$")

PARTITIONS_SQL = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'metering_event'::regclass
"""


def _index(month: Month) -> int:
    """A month as a number: months since January of year 0."""
    return month.year * 12 + month.month - 1


def _month(index: int) -> Month:
    return dt.date(index // 12, index % 12 + 1, 1)


def _label(index: int) -> str:
    return f"y{index // 12:04d}m{index % 12 + 1:02d}"


def _literal(index: int) -> str:
    """The month's first instant as PostgreSQL reads it (the end of December 9999 is in the year 10000, which
    Python's dates do not reach)."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}-01 00:00:00+00"


@dataclass(frozen=True)
class Span:
    """A partition's range of months [first, end): `first` None is the beginning of time (MINVALUE), `end` None
    the end of time (MAXVALUE). Months are numbered as `_index` numbers them."""

    first: int | None
    end: int | None

    @classmethod
    def of_month(cls, month: Month) -> "Span":
        return cls(_index(month), _index(month) + 1)

    @property
    def monthly(self) -> bool:
        return self.first is not None and self.end == self.first + 1

    @property
    def name(self) -> str:
        first = "min" if self.first is None else _label(self.first)
        if self.monthly:
            return f"metering_event_{first}"
        return f"metering_event_{first}_{'max' if self.end is None else _label(self.end)}"

    @property
    def start_time(self) -> dt.datetime | None:
        """The first instant of the range (None: the beginning of time)."""
        return None if self.first is None else dt.datetime(self.first // 12, self.first % 12 + 1, 1, tzinfo=dt.UTC)

    @property
    def end_time(self) -> dt.datetime | None:
        """The first instant after the range (None: the end of time, or beyond the year 9999)."""
        if self.end is None or self.end // 12 > 9999:
            return None
        return dt.datetime(self.end // 12, self.end % 12 + 1, 1, tzinfo=dt.UTC)

    def covers(self, index: int) -> bool:
        return (self.first is None or self.first <= index) and (self.end is None or index < self.end)

    def bounds_sql(self) -> sql.Composable:
        first = sql.SQL("MINVALUE") if self.first is None else sql.Literal(_literal(self.first))
        end = sql.SQL("MAXVALUE") if self.end is None else sql.Literal(_literal(self.end))
        return sql.SQL("FOR VALUES FROM ({}) TO ({})").format(first, end)

    def where_sql(self) -> sql.Composable:
        """The condition on `time` of the rows in the range."""
        parts = [] if self.first is None else [sql.SQL("time >= {}").format(sql.Literal(_literal(self.first)))]
        if self.end is not None:
            parts.append(sql.SQL("time < {}").format(sql.Literal(_literal(self.end))))
        return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")

    def sort_key(self) -> tuple[int, int]:
        return (-1, 0) if self.first is None else (0, self.first)


def _span_of(name: str) -> Span | None:
    match = _NAME_RE.match(name)
    if match is None:
        return None
    first = None if match[1] == "min" else int(match[2]) * 12 + int(match[3]) - 1
    if match[4] is None:  # one month
        return Span(first, None if first is None else first + 1)
    end = None if match[4] == "max" else int(match[5]) * 12 + int(match[6]) - 1
    return Span(first, end)


_known: list[Span] = []


def month_of(moment: dt.datetime) -> Month:
    """The UTC month of a time."""
    if moment.tzinfo is not dt.UTC:  # ingest's times are UTC already
        moment = moment.astimezone(dt.UTC)
    return dt.date(moment.year, moment.month, 1)


def window(*, at: dt.datetime) -> tuple[int, int]:
    """The months [first, end) that get a partition each, around `at` (capped at December 9999)."""
    this = _index(month_of(at))
    return this - BEHIND_MONTHS, min(this + AHEAD_MONTHS + 1, _index(dt.date(9999, 12, 1)) + 1)


def partitions() -> list[Span]:
    """The partitions' ranges, oldest first."""
    with connection.cursor() as cur:
        cur.execute(PARTITIONS_SQL)
        names = [name for (name,) in cur.fetchall()]
    return sorted((span for span in map(_span_of, names) if span is not None), key=Span.sort_key)


def covering(spans: Iterable[Span], month: Month) -> Span | None:
    index = _index(month)
    return next((span for span in spans if span.covers(index)), None)


def _free_range(spans: list[Span], index: int, first: int, end: int) -> Span:
    """The partition for an uncovered month outside the window [first, end): the free range around it, not
    reaching into the window."""
    if first <= index < end:
        return Span(index, index + 1)
    lower = max((s.end for s in spans if s.end is not None and s.end <= index), default=None)
    upper = min((s.first for s in spans if s.first is not None and s.first > index), default=None)
    if index < first:
        return Span(lower, first if upper is None else min(upper, first))
    return Span(end if lower is None else max(lower, end), upper)


def partitions_ensure(months: Iterable[Month], *, at: dt.datetime | None = None) -> None:
    """Make sure a partition covers each of `months` (safe with concurrent callers): a month inside the window
    around `at` (default now) gets its own, any other the free range around it."""
    missing = {_index(m) for m in months if covering(_known, m) is None}
    if not missing:
        return
    first, end = window(at=at or timezone.now())
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
        spans = partitions()
        # the window's months first, so that a free range outside it ends where they start
        for index in sorted(missing, key=lambda i: not first <= i < end):
            if not any(span.covers(index) for span in spans):
                span = _free_range(spans, index, first, end)
                _create(cur, span)
                spans.append(span)
    _known[:] = spans


def _create(cur: CursorWrapper, span: Span) -> None:
    name = sql.Identifier(span.name)
    cur.execute(sql.SQL("CREATE TABLE {} (LIKE metering_event INCLUDING DEFAULTS)").format(name))
    cur.execute(sql.SQL("ALTER TABLE metering_event ATTACH PARTITION {} {}").format(name, span.bounds_sql()))


def partitions_forget() -> None:
    """Forget which partitions exist (after a failed insert: one of them was dropped)."""
    _known.clear()


def partitions_ahead(*, at: dt.datetime) -> int:
    """The maintenance job: this month and the next `AHEAD_MONTHS` ready before any event needs them, each its
    own partition; a month that a coarse partition covers is split off it. Returns how many months were split off
    (0 also when the event table was busy: the next run tries again)."""
    months = [_month(i) for i in range(_index(month_of(at)), window(at=at)[1])]
    partitions_ensure(months, at=at)
    split = 0
    for month in months:
        span = covering(partitions(), month)
        if span is not None and not span.monthly:
            if not partition_split(span, month):
                break
            split += 1
    return split


def partition_split(span: Span, month: Month) -> bool:
    """Give `month` a partition of its own, out of the coarse partition `span` that covers it: the coarse partition
    is detached, the rows of the month (and of the months before it in `span`, which become a partition of their
    own) move out, and it is attached again for the months after. Holds the event table exclusively meanwhile
    (ingest and queries wait; at most `lock_timeout` for the lock, else nothing is done and False returned)."""
    index = _index(month)
    pieces = [Span(span.first, index)] if span.first is None or span.first < index else []
    pieces.append(Span(index, index + 1))
    kept = Span(index + 1, span.end) if span.end is None or span.end > index + 1 else pieces.pop()
    old = sql.Identifier(span.name)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL lock_timeout = '2s'")
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
        if span not in partitions():
            return False
        try:
            with transaction.atomic():
                cur.execute(sql.SQL("ALTER TABLE metering_event DETACH PARTITION {}").format(old))
        except OperationalError as exc:
            if isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):
                return False  # ingest or a long query held the table: the next run tries again
            raise
        for piece in pieces:
            name = sql.Identifier(piece.name)
            cur.execute(sql.SQL("CREATE TABLE {} (LIKE metering_event INCLUDING DEFAULTS)").format(name))
            cur.execute(
                sql.SQL("WITH moved AS (DELETE FROM {} WHERE {} RETURNING *) INSERT INTO {} SELECT * FROM moved").format(
                    old, piece.where_sql(), name
                )
            )
            cur.execute(sql.SQL("ALTER TABLE metering_event ATTACH PARTITION {} {}").format(name, piece.bounds_sql()))
        cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(old, sql.Identifier(kept.name)))
        cur.execute(
            sql.SQL("ALTER TABLE metering_event ATTACH PARTITION {} {}").format(
                sql.Identifier(kept.name), kept.bounds_sql()
            )
        )
    partitions_forget()
    return True


def partition_drop(span: Span, *, unless: Callable[[], bool]) -> bool:
    """Drop a partition's events unless `unless()` holds once the event table is locked (no ingest runs
    meanwhile); returns whether it was dropped. The lock is held for a moment; ingest queued behind it waits at
    most `lock_timeout`, after which the drop fails (psycopg's LockNotAvailable) and a later run tries again."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL lock_timeout = '2s'")
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
        if span not in partitions():
            return False
        cur.execute("LOCK TABLE metering_event IN ACCESS EXCLUSIVE MODE")
        if unless():
            return False
        name = sql.Identifier(span.name)
        cur.execute(sql.SQL("ALTER TABLE metering_event DETACH PARTITION {}").format(name))
        cur.execute(sql.SQL("DROP TABLE {}").format(name))
    partitions_forget()
    return True
