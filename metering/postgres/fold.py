"""Per-meter rollups (HOT PATH for queries): folding pending events and backfilling meters.

Every stored event is queued in `metering_pendingevent` by the same statement that stores it, in the fold shard of
its subject (`metering.postgres.store.FOLD_SHARDS`). A fold takes one shard (a try-lock: no other process folds it
meanwhile), moves a batch of it from pending into the rollups of every live meter of the batch's event types in
ONE transaction, so a query (rollups + pending, one snapshot) sees each event exactly once. Folds of different
shards run in parallel (one per Celery worker process): a subject's events are all in one shard, so two folds
never write the same per-subject bucket; the all-subjects buckets (subject '') they may share are written last,
in key order, so a fold waits for another only for the moment before that one commits, and never in a cycle.

A meter that is created over existing events, or whose groupBy changes, is (re)built by a backfill: its
`backfill_cursor` walks the event seq range in chunks. While it is not NULL:
  - the fold adds to the meter only events with seq < cursor (events the backfill has passed);
  - a backfill chunk [c, c + n) adds events that are not pending, then moves the cursor to c + n.
A fold holds a SHARED lock on each event type of its batch (taken after claiming the batch, before reading the
meters), a backfill chunk and a rebuild's start an EXCLUSIVE lock on their meter's event type: folds run
together, but never beside a backfill step of a meter they fold. So an event is counted exactly once:
  - folded (its pending row deleted and committed) before its chunk runs → the chunk sees it as not pending and
    adds it; the fold did not (it read cursor <= seq after its lock, hence after any earlier chunk's commit);
  - still pending, or being folded by an uncommitted fold, when its chunk runs → the chunk skips it; that fold, or a
    later one, reads the cursor after the chunk committed (it waits for the lock) and adds it (seq < cursor);
  - committed late with a lower seq → it is pending, so a fold adds it;
  - of a meter created while a fold of its type runs → the meter's rebuild start waits for that fold, or the
    fold reads the meter (cursor 0: adds nothing) and its chunks wait for the fold's commit.
When the cursor passes max(seq) the meter is ready (cursor NULL) and queries switch from raw events to rollups.
The lock is keyed by event type, not meter, because a fold learns its meters from its batch's types: a meter
created meanwhile has no lock of its own that the fold could have taken.
"""

import logging
import random

from django.db import DatabaseError, connection, transaction
from django.db.backends.utils import CursorWrapper
from psycopg import sql

from metering import progress
from metering.models import Meter, MeterAggregation
from metering.postgres.query import eligible_sql, extracted_sql, group_column
from metering.postgres.store import FOLD_SHARDS

logger = logging.getLogger(__name__)

# Advisory lock namespaces (the two-int form: namespace, key)
SHARD_LOCK = 0x6F6D7368  # "omsh" + shard: one fold per shard at a time
TYPE_LOCK = 0x6F6D7479  # "omty" + hashtext(event type): folds shared, backfill steps and rebuild starts exclusive
FOLD_BATCH = 200_000  # bigger batches share more buckets between their events: fewer upserts per event
VACUUM_AFTER = 100_000  # the queue is vacuumed every time this many events were folded
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
    and (hours and days) for all subjects together, and add them to the rollups in one statement: per-subject
    rows first, in key order, then the all-subjects rows (which a fold of another shard may be writing too).

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
        ORDER BY GROUPING(subject), 1, 3, 2, 4, 5
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
# The shard's first `limit` pending events, by seq range (no row locks: the shard's lock keeps other folds out). An
# event committed later with a lower seq stays pending for the next batch. Each event is read from its partition.
CLAIM_SQL = """
WITH batch AS (
    DELETE FROM metering_pendingevent
    WHERE shard = %(shard)s AND seq <= (SELECT max(seq) FROM (
        SELECT seq FROM metering_pendingevent WHERE shard = %(shard)s ORDER BY seq LIMIT %(limit)s) AS first)
    RETURNING seq, time
)
INSERT INTO om_fold
SELECT e.seq, e.type, e.subject, e.time, e.data FROM batch b
CROSS JOIN LATERAL (SELECT * FROM metering_event e WHERE e.seq = b.seq AND e.time = b.time OFFSET 0) AS e
"""


def lock_event_types(cur: CursorWrapper, types: list[str], *, exclusive: bool) -> None:
    """Take the event types' locks until the transaction ends, in key order (no two folds wait in a cycle)."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    cur.execute(
        f"SELECT {function}(%s, k) FROM (SELECT DISTINCT hashtext(t) AS k FROM unnest(%s::text[]) AS t ORDER BY k "
        "OFFSET 0) AS keys",
        [TYPE_LOCK, types],
    )


def fold_pending(*, limit: int = FOLD_BATCH) -> int:
    """One pass over every shard, starting at a random one: each shard that no other process is folding gives a
    batch of up to `limit` events. Every pass visits every shard, so an event waits at most about one pass however
    long the queue. Returns how many were folded."""
    first = random.randrange(FOLD_SHARDS)  # spreads parallel folds over the shards
    return sum(fold_shard(shard=(first + i) % FOLD_SHARDS, limit=limit) for i in range(FOLD_SHARDS))


def fold_shard(*, shard: int, limit: int = FOLD_BATCH) -> int:
    """Fold up to `limit` pending events of one shard into the rollups; returns how many were folded (0 when
    another process is folding the shard)."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [SHARD_LOCK, shard])
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SET LOCAL work_mem = '256MB'")  # the batch aggregates in memory instead of spilling
        cur.execute(FOLD_TABLE_SQL)
        cur.execute("TRUNCATE om_fold")  # ON COMMIT empties it, but a caller's outer transaction may not have ended
        cur.execute(CLAIM_SQL, {"shard": shard, "limit": limit})
        claimed = cur.rowcount
        if claimed == 0:
            return 0
        cur.execute("SELECT DISTINCT type FROM om_fold")
        types = [t for (t,) in cur.fetchall()]
        lock_event_types(cur, types, exclusive=False)
        for meter in Meter.objects.filter(deleted_at__isnull=True, event_type__in=types).order_by("pk"):
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
        rollups_rebuild_start(meter=meter)  # waits for the other folds of its type: they may be adding to it


def fold_all(*, limit: int = FOLD_BATCH, max_batches: int = 100, vacuum_after: int | None = None) -> int:
    """Fold until a pass over the shards finds nothing to fold (or `max_batches` passes); returns how many events
    were folded. With `vacuum_after`, the queue is vacuumed each time that many more events were folded."""
    total = since_vacuum = 0
    for _ in range(max_batches):
        folded = fold_pending(limit=limit)
        total += folded
        since_vacuum += folded
        if vacuum_after is not None and since_vacuum >= vacuum_after and not connection.in_atomic_block:
            with connection.cursor() as cur:
                cur.execute("VACUUM (SKIP_LOCKED) metering_pendingevent")  # another fold's vacuum does it as well
            since_vacuum = 0
        if folded == 0:
            break
    return total


def fold_backlog(*, limit: int = FOLD_BATCH, max_batches: int = 100, vacuum_after: int = VACUUM_AFTER) -> int:
    """`fold_all`, vacuuming the queue every `vacuum_after` events folded. The queue is a table that every event
    goes through (an insert at ingest, a delete when folded); until vacuum comes by, its dead rows and index
    entries are read again by every claim and every query of the raw tail. In a sustained run where one fold task
    ran 100 passes before vacuuming, the queue's index grew to 190 MB for a few thousand live rows. VACUUM needs
    autocommit: callers inside a transaction skip it."""
    return fold_all(limit=limit, max_batches=max_batches, vacuum_after=vacuum_after)


# --- backfill -----------------------------------------------------------------------------------------------------


def rollups_rebuild_start(*, meter: Meter) -> None:
    """Mark the meter as being rebuilt and drop its rollups (queries read raw events until the backfill ends).
    Call inside the transaction that changes the meter; start `backfill` on commit."""
    with connection.cursor() as cur:
        lock_event_types(cur, [meter.event_type], exclusive=True)
        cur.execute("DELETE FROM metering_rollup WHERE meter_id = %s", [meter.pk])
    Meter.objects.filter(pk=meter.pk).update(backfill_cursor=0)
    meter.backfill_cursor = 0


def backfill_step(*, meter_id: str, chunk: int = BACKFILL_CHUNK) -> bool:
    """Add one chunk of old events to the meter's rollups; returns True when the meter is ready."""
    with transaction.atomic(), connection.cursor() as cur:
        event_type = Meter.objects.filter(pk=meter_id).values_list("event_type", flat=True).first()
        if event_type is None:
            return True
        lock_event_types(cur, [event_type], exclusive=True)
        meter = Meter.objects.filter(pk=meter_id, deleted_at__isnull=True).first()  # read after the lock
        if meter is None or meter.backfill_cursor is None:
            return True
        cursor = meter.backfill_cursor
        cur.execute("SET LOCAL work_mem = '256MB'")
        cur.execute("SELECT coalesce(max(seq), 0) FROM metering_event")
        max_seq = cur.fetchone()[0]
        if cursor > max_seq:
            Meter.objects.filter(pk=meter.pk).update(backfill_cursor=None)
            progress.progress_set(progress.meter_build_id(meter.pk), total=max_seq, success=max_seq,
                                  ttl=progress.BACKFILL_TTL)
            return True
        # the chunk's pending seqs once (the queue is keyed by shard first), then a hashed NOT IN
        condition = sql.SQL(
            "e.seq >= {lo} AND e.seq < {hi} AND e.seq NOT IN "
            "(SELECT p.seq FROM metering_pendingevent p WHERE p.seq >= {lo} AND p.seq < {hi})"
        ).format(lo=sql.Literal(cursor), hi=sql.Literal(cursor + chunk))
        cur.execute(upsert_rollups_sql(meter, sql.SQL("metering_event e"), condition))
        Meter.objects.filter(pk=meter.pk).update(backfill_cursor=cursor + chunk)
        progress.progress_set(
            progress.meter_build_id(meter.pk), total=max_seq, success=min(cursor + chunk, max_seq), ttl=progress.BACKFILL_TTL
        )
        return False


def backfill(*, meter_id: str, chunk: int = BACKFILL_CHUNK) -> None:
    """Run a meter's backfill to the end (each chunk in its own short transaction)."""
    while not backfill_step(meter_id=meter_id, chunk=chunk):
        pass
