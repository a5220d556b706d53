"""Per-meter rollups (HOT PATH for queries): folding pending events and backfilling meters.

Every stored event is queued in `metering_pendingevent` by the same statement that stores it. The fold moves a
batch from pending into the rollups of every live meter of the batch's event types in ONE transaction, so a
query (rollups + pending, one snapshot) sees each event exactly once.

A meter that is created over existing events, or whose groupBy changes, is (re)built by a backfill: its
`backfill_cursor` walks the event seq range in chunks. While it is not NULL:
  - the fold adds to the meter only events with seq < cursor (events the backfill has passed);
  - a backfill chunk [c, c + n) adds events that are not pending, then moves the cursor to c + n.
Both run under one transaction-level advisory lock, so an event is counted exactly once: folded before its
chunk → the chunk sees it as not pending; still pending at its chunk → the fold adds it later (seq < cursor);
committed late with a lower seq → it is pending, so the fold adds it. When the cursor passes max(seq) the meter
is ready (cursor NULL) and queries switch from raw events to rollups.
"""

import logging

from django.db import DatabaseError, connection, transaction
from django.db.backends.utils import CursorWrapper
from psycopg import sql

from metering import progress
from metering.models import Meter, MeterAggregation
from metering.postgres.query import eligible_sql, extracted_sql, group_column

logger = logging.getLogger(__name__)

ROLLUP_LOCK = 0x6F6D5F726F6C6C  # "om_roll": one folder or backfill step at a time
FOLD_BATCH = 200_000  # bigger batches share more buckets between their events: fewer upserts per event
VACUUM_AFTER = 100_000  # events folded in one run after which the emptied queue is vacuumed
BACKFILL_CHUNK = 200_000

_LATEST_MERGE = "(excluded.latest_time, excluded.latest_seq) > (metering_rollup.latest_time, metering_rollup.latest_seq)"
UPSERT_TAIL = f"""
ON CONFLICT (meter_id, resolution, bucket, subject, groups, uvalue) DO UPDATE SET
    sum = metering_rollup.sum + excluded.sum,
    count = metering_rollup.count + excluded.count,
    min = least(metering_rollup.min, excluded.min),
    max = greatest(metering_rollup.max, excluded.max),
    first_time = least(metering_rollup.first_time, excluded.first_time),
    latest_time = greatest(metering_rollup.latest_time, excluded.latest_time),
    latest_seq = CASE WHEN {_LATEST_MERGE} THEN excluded.latest_seq ELSE metering_rollup.latest_seq END,
    latest_value = CASE WHEN {_LATEST_MERGE} THEN excluded.latest_value ELSE metering_rollup.latest_value END
"""


def upsert_rollups_sql(meter: Meter, source: sql.Composable, condition: sql.Composable) -> sql.Composable:
    """Aggregate the meter's events from `source` (aliased `e`) at minute, hour and day resolution, per subject
    and (hours and days) for all subjects together, and add them to the rollups in one statement.

    One pass over the events with GROUPING SETS, grouped on the groupBy values as text (the rollup's `groups`
    jsonb is built once per bucket, not hashed per event): several times cheaper than aggregating minutes first
    and rolling them up, and the sums are the same."""
    keys = sorted(meter.group_by)
    group_columns = [sql.Identifier(f"g{i}") for i in range(len(keys))]
    values = [sql.SQL("{} AS {}").format(group_column(meter, k), c) for k, c in zip(keys, group_columns, strict=True)]
    groups = (
        sql.SQL("jsonb_build_object({})").format(
            sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(k), c) for k, c in zip(keys, group_columns, strict=True))
        )
        if keys
        else sql.SQL("'{}'::jsonb")
    )
    cell = sql.SQL(", ").join([*group_columns, sql.SQL("uvalue")])
    latest_seq, latest_value = _latest_parts(meter, "time DESC, seq DESC", "seq", "v")
    return sql.SQL(
        """
        WITH b AS (
            SELECT date_trunc('minute', e.time, 'UTC') AS mi, date_trunc('hour', e.time, 'UTC') AS h,
                   date_trunc('day', e.time, 'UTC') AS d, e.subject, {values} x.u AS uvalue, x.v AS v, e.time, e.seq
            FROM {source} {extracted} WHERE {eligible} AND {condition}
        )
        INSERT INTO metering_rollup (resolution, bucket, subject, groups, uvalue, sum, count, min, max, first_time,
                                     latest_time, latest_seq, latest_value, meter_id)
        SELECT CASE WHEN GROUPING(mi) = 0 THEN 1 WHEN GROUPING(h) = 0 THEN 2 ELSE 3 END, coalesce(mi, h, d),
               CASE WHEN GROUPING(subject) = 0 THEN subject ELSE '' END, {groups}, uvalue, sum(v), count(*),
               min(v), max(v), min(time), max(time), {latest_seq}, {latest_value}, {meter}
        FROM b
        GROUP BY GROUPING SETS ((mi, subject, {cell}), (h, subject, {cell}), (d, subject, {cell}), (h, {cell}), (d, {cell}))
        """
    ).format(
        values=sql.SQL("").join(v + sql.SQL(",") for v in values),
        source=source,
        extracted=extracted_sql(meter),
        eligible=eligible_sql(meter),
        condition=condition,
        groups=groups,
        latest_seq=latest_seq,
        latest_value=latest_value,
        meter=sql.Literal(meter.pk),
        cell=cell,
    ) + sql.SQL(UPSERT_TAIL)


def _latest_parts(meter: Meter, order: str, seq: str, value: str) -> tuple[sql.Composable, sql.Composable]:
    if meter.aggregation != MeterAggregation.LATEST:
        return sql.SQL("NULL::bigint"), sql.SQL("NULL::numeric")
    return (
        sql.SQL("(array_agg({} ORDER BY {}))[1]").format(sql.SQL(seq), sql.SQL(order)),
        sql.SQL("(array_agg({} ORDER BY {}))[1]").format(sql.SQL(value), sql.SQL(order)),
    )


FOLD_TABLE_SQL = """
CREATE TEMP TABLE IF NOT EXISTS om_fold (seq bigint, type text, subject text, time timestamptz, data jsonb)
ON COMMIT DELETE ROWS
"""
# The first `limit` pending events, by seq range (no row locks: one folder at a time holds the advisory lock,
# and even without it DELETE hands each row to one statement only). An event committed later with a lower seq
# stays pending for the next batch.
CLAIM_SQL = """
WITH batch AS (
    DELETE FROM metering_pendingevent
    WHERE seq <= (SELECT max(seq) FROM (SELECT seq FROM metering_pendingevent ORDER BY seq LIMIT %s) AS first)
    RETURNING seq
)
INSERT INTO om_fold SELECT e.seq, e.type, e.subject, e.time, e.data FROM metering_event e JOIN batch USING (seq)
"""


def fold_pending(*, limit: int = FOLD_BATCH) -> int:
    """Fold up to `limit` pending events into the rollups; returns how many were folded (0 when another folder
    holds the lock)."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [ROLLUP_LOCK])
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SET LOCAL work_mem = '256MB'")  # the batch aggregates in memory instead of spilling
        cur.execute(FOLD_TABLE_SQL)
        cur.execute("TRUNCATE om_fold")  # ON COMMIT empties it, but a caller's outer transaction may not have ended
        cur.execute(CLAIM_SQL, [limit])
        claimed = cur.rowcount
        if claimed == 0:
            return 0
        cur.execute("SELECT DISTINCT type FROM om_fold")
        types = [t for (t,) in cur.fetchall()]
        for meter in Meter.objects.filter(deleted_at__isnull=True, event_type__in=types):
            _fold_meter(cur, meter)
        return claimed


def _fold_meter(cur: CursorWrapper, meter: Meter) -> None:
    """Add the batch to one meter's rollups. A meter whose JSONPath fails at run time (e.g. a division by zero
    in a filter) must not stop the fold for every other meter: it is marked for a rebuild instead, so its
    queries read raw events (and show the error) until it is fixed."""
    condition: sql.Composable = sql.SQL("TRUE")
    if meter.backfill_cursor is not None:  # being rebuilt: the backfill owns seq >= cursor
        condition = sql.SQL("e.seq < {}").format(sql.Literal(meter.backfill_cursor))
    try:
        with transaction.atomic():
            cur.execute(upsert_rollups_sql(meter, sql.SQL("om_fold e"), condition))
    except DatabaseError:
        logger.exception("folding meter %s failed; marking it for a rollup rebuild", meter.slug)
        Meter.objects.filter(pk=meter.pk).update(backfill_cursor=0)
        cur.execute("DELETE FROM metering_rollup WHERE meter_id = %s", [meter.pk])


def fold_all(*, limit: int = FOLD_BATCH, max_batches: int = 100) -> int:
    """Fold until pending is empty (or `max_batches` batches); returns how many events were folded."""
    total = 0
    for _ in range(max_batches):
        folded = fold_pending(limit=limit)
        total += folded
        if folded < limit:
            break
    return total


def fold_backlog(*, limit: int = FOLD_BATCH, max_batches: int = 100, vacuum_after: int = VACUUM_AFTER) -> int:
    """`fold_all`, then vacuum the queue if the run emptied a large part of it: every query reads the queue
    (the raw tail), and until autovacuum comes by its dead rows are scanned too (a freshly emptied queue of
    1,000,000 events cost each query ~20 ms). VACUUM needs autocommit: callers inside a transaction skip it."""
    folded = fold_all(limit=limit, max_batches=max_batches)
    if folded >= vacuum_after and not connection.in_atomic_block:
        with connection.cursor() as cur:
            cur.execute("VACUUM metering_pendingevent")
    return folded


# --- backfill -----------------------------------------------------------------------------------------------------


def progress_id(meter: Meter) -> str:
    """The `info.getProgress` id of a meter's rollup backfill."""
    return f"meter-{meter.pk}-rollups"


def rollups_rebuild_start(*, meter: Meter) -> None:
    """Mark the meter as being rebuilt and drop its rollups (queries read raw events until the backfill ends).
    Call inside the transaction that changes the meter; start `backfill` on commit."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK])
        cur.execute("DELETE FROM metering_rollup WHERE meter_id = %s", [meter.pk])
    Meter.objects.filter(pk=meter.pk).update(backfill_cursor=0)
    meter.backfill_cursor = 0


def backfill_step(*, meter_id: str, chunk: int = BACKFILL_CHUNK) -> bool:
    """Add one chunk of old events to the meter's rollups; returns True when the meter is ready."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK])
        meter = Meter.objects.filter(pk=meter_id, deleted_at__isnull=True).first()
        if meter is None or meter.backfill_cursor is None:
            return True
        cursor = meter.backfill_cursor
        cur.execute("SET LOCAL work_mem = '256MB'")
        cur.execute("SELECT coalesce(max(seq), 0) FROM metering_event")
        max_seq = cur.fetchone()[0]
        if cursor > max_seq:
            Meter.objects.filter(pk=meter.pk).update(backfill_cursor=None)
            progress.progress_set(progress_id(meter), total=max_seq, success=max_seq, ttl=progress.BACKFILL_TTL)
            return True
        condition = sql.SQL(
            "e.seq >= {lo} AND e.seq < {hi} AND NOT EXISTS (SELECT 1 FROM metering_pendingevent p WHERE p.seq = e.seq)"
        ).format(lo=sql.Literal(cursor), hi=sql.Literal(cursor + chunk))
        cur.execute(upsert_rollups_sql(meter, sql.SQL("metering_event e"), condition))
        Meter.objects.filter(pk=meter.pk).update(backfill_cursor=cursor + chunk)
        progress.progress_set(
            progress_id(meter), total=max_seq, success=min(cursor + chunk, max_seq), ttl=progress.BACKFILL_TTL
        )
        return False


def backfill(*, meter_id: str, chunk: int = BACKFILL_CHUNK) -> None:
    """Run a meter's backfill to the end (each chunk in its own short transaction)."""
    while not backfill_step(meter_id=meter_id, chunk=chunk):
        pass
