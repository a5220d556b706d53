"""The event store (HOT PATH): one statement per batch, de-duplicated on (source, id) by the database.

An event is stored and queued for the rollups in the same statement, so it is either pending (read raw by
queries) or folded into rollups, never both and never neither.

`insert_batch` is the ingest path: PostgreSQL parses the request body as jsonb and each event's fields are
read from it (exact numbers in `data`); Python only supplies the validated times. `bench/ingest.py` measured
this unnest/jsonb form against COPY into a temporary table and kept the faster (see bench/README.md).
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction

from metering.events.ingest import IngestBatch

INSERT_SQL = """
WITH ins AS (
    INSERT INTO metering_event (id, source, type, subject, time, data)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[])
    ON CONFLICT (source, id) DO NOTHING
    RETURNING seq
)
INSERT INTO metering_pendingevent (seq) SELECT seq FROM ins
"""

# Rows are inserted in (source, id) order, the first of each pair in the body only: two batches that share
# events then take their unique-index locks in the same order, so one waits for the other instead of deadlocking.
INSERT_BATCH_SQL = """
WITH ins AS (
    INSERT INTO metering_event (id, source, type, subject, time, data)
    SELECT DISTINCT ON ((e->>'source') COLLATE "C", (e->>'id') COLLATE "C")
        e->>'id', e->>'source', e->>'type', e->>'subject', t, NULLIF(e->'data', 'null'::jsonb)
    FROM ROWS FROM (jsonb_array_elements(%s::jsonb), unnest(%s::timestamptz[])) WITH ORDINALITY AS x(e, t, n)
    ORDER BY (e->>'source') COLLATE "C", (e->>'id') COLLATE "C", n
    ON CONFLICT (source, id) DO NOTHING
    RETURNING seq
)
INSERT INTO metering_pendingevent (seq) SELECT seq FROM ins
"""


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
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(INSERT_SQL, columns)
        return cur.rowcount


def insert_batch(batch: IngestBatch) -> int:
    """Store a validated ingest batch all-or-nothing; returns how many events were new. One statement is one
    transaction (autocommit), so no BEGIN/COMMIT round trips: when this returns, the batch is committed."""
    with connection.cursor() as cur:
        cur.execute(INSERT_BATCH_SQL, (batch.body, batch.times))
        return cur.rowcount
