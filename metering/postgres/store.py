"""The event store (HOT PATH): one statement per batch, de-duplicated on (source, id) by the database.

An event is stored and queued for the rollups in the same statement, so it is either pending (read raw by
queries) or folded into rollups, never both and never neither.

De-duplication: the event table is partitioned by month (metering/postgres/partitions.py), so it cannot be unique on
(source, id); the statement first inserts the batch's keys into `metering_eventkey` (ON CONFLICT DO NOTHING) and
stores only the events whose key it inserted. A key is kept `DEDUP_WINDOW` after it was stored, whatever the
event's time, so within that window a repeated event is never stored twice, even in another month's partition.
Keys are inserted in (source, id) order: two batches that share events take their key locks in the same order,
so one waits for the other instead of deadlocking.

`insert_batch` is the ingest path: PostgreSQL parses the request body as jsonb and each event's fields are
read from it (exact numbers in `data`); Python only supplies the validated times. `bench/ingest.py` measured
this unnest/jsonb form against COPY into a temporary table and kept the faster (see bench/README.md).
"""

import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import IntegrityError, connection, transaction

from metering.events.ingest import IngestBatch
from metering.postgres.partitions import month_of, partitions_ensure, partitions_forget

DEDUP_WINDOW = dt.timedelta(days=32)
FOLD_SHARDS = 16  # a power of two: an event's shard is the low bits of its subject's hash


def shard_sql(subject: str) -> str:
    """An event's fold shard from its subject column, as ingest computes it (queries joining the pending queue to
    events use it to look pending rows up by their primary key)."""
    return f"(hashtext({subject}) & {FOLD_SHARDS - 1})::smallint"



def store_sql(batch_sql: str) -> str:
    """The statement that stores the rows of `batch_sql` (id, source, type, subject, time, data; each (source, id)
    once, in (source, id) order) whose key is new, and queues them for the fold."""
    return f"""
WITH batch AS MATERIALIZED ({batch_sql}),
new AS (
    INSERT INTO metering_eventkey (source, id) SELECT source, id FROM batch
    ON CONFLICT (source, id) DO NOTHING
    RETURNING source, id
),
ins AS (
    INSERT INTO metering_event (id, source, type, subject, time, data)
    SELECT b.id, b.source, b.type, b.subject, b.time, b.data FROM batch b JOIN new USING (source, id)
    RETURNING seq, time, subject
)
INSERT INTO metering_pendingevent (shard, seq, time) SELECT {shard_sql('subject')}, seq, time FROM ins
"""


INSERT_SQL = store_sql(
    """
    SELECT DISTINCT ON (source COLLATE "C", id COLLATE "C") id, source, type, subject, time, data
    FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[]) WITH ORDINALITY
         AS x(id, source, type, subject, time, data, n)
    ORDER BY source COLLATE "C", id COLLATE "C", n
    """
)

# The first of each (source, id) in the body is the one kept, as when the same event comes in a later batch.
INSERT_BATCH_SQL = store_sql(
    """
    SELECT DISTINCT ON ((e->>'source') COLLATE "C", (e->>'id') COLLATE "C")
        e->>'id' AS id, e->>'source' AS source, e->>'type' AS type, e->>'subject' AS subject, t AS time,
        NULLIF(e->'data', 'null'::jsonb) AS data
    FROM ROWS FROM (jsonb_array_elements(%s::jsonb), unnest(%s::timestamptz[])) WITH ORDINALITY AS x(e, t, n)
    ORDER BY (e->>'source') COLLATE "C", (e->>'id') COLLATE "C", n
    """
)


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    source: str
    type: str
    subject: str
    time: dt.datetime
    data_json: str | None  # the event's `data` as JSON text


def insert_events(rows: Sequence[EventRow]) -> int:
    """Store a batch all-or-nothing; returns how many were new (duplicates are dropped silently)."""
    if not rows:
        return 0
    columns = (
        [r.id for r in rows],
        [r.source for r in rows],
        [r.type for r in rows],
        [r.subject for r in rows],
        [r.time for r in rows],
        [r.data_json for r in rows],
    )
    return _store(INSERT_SQL, columns, [r.time for r in rows])


def insert_batch(batch: IngestBatch) -> int:
    """Store a validated ingest batch all-or-nothing; returns how many events were new. One statement is one
    transaction (autocommit), so no BEGIN/COMMIT round trips: when this returns, the batch is committed."""
    return _store(INSERT_BATCH_SQL, (batch.body, batch.times), batch.times)


def _store(statement: str, params: Sequence[Any], times: Sequence[dt.datetime]) -> int:
    """Run a store statement once the partitions of `times` exist. The only check a store statement can fail is
    a row without a partition: a month remembered as existing was dropped meanwhile, so it is created and the
    statement runs again (inside a savepoint when the caller holds a transaction, which the failure would break)."""
    months = {month_of(t) for t in times}
    partitions_ensure(months)
    try:
        return _execute(statement, params)
    except IntegrityError as exc:
        if not isinstance(exc.__cause__, psycopg.errors.CheckViolation):
            raise
    partitions_forget()
    partitions_ensure(months)
    return _execute(statement, params)


def _execute(statement: str, params: Sequence[Any]) -> int:
    with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext(), connection.cursor() as cur:
        cur.execute(statement, params)
        return cur.rowcount


PURGE_CHUNK = 50_000


def keys_purge(*, at: dt.datetime) -> int:
    """Delete the de-duplication keys stored before `at - DEDUP_WINDOW`, a chunk per statement; returns how many."""
    purged = 0
    with connection.cursor() as cur:
        while True:
            cur.execute(
                "DELETE FROM metering_eventkey WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM metering_eventkey WHERE stored_at < %s LIMIT %s))",
                [at - DEDUP_WINDOW, PURGE_CHUNK],
            )
            purged += cur.rowcount
            if cur.rowcount < PURGE_CHUNK:
                return purged
