"""Storing ingest batches in ClickHouse (HOT PATH), de-duplicated on (source, id) at ingest, as upstream does.

The keys of a batch go into PostgreSQL's `metering_clickhouseeventkey` (`INSERT … ON CONFLICT DO NOTHING
RETURNING`): the keys it returns are the new events, and only those are inserted into ClickHouse, inside the
same PostgreSQL transaction. So:
  - two batches sharing an event: the second waits for the first's keys and finds them there (never stored
    twice); keys are inserted in (source, id) order, so such batches wait instead of deadlocking;
  - ClickHouse refuses the insert: the keys roll back, nothing is stored, the client retries;
  - the insert succeeded but the commit failed: the retried batch has the same new keys, hence the same
    `insert_deduplication_token`, and ClickHouse drops the repeated block.
Keys are kept 32 days (upstream's de-duplication window), then purged by the fold job.

Each insert takes its event types' ingest locks (shared) before it numbers its batch (`batch`, from a PostgreSQL
sequence), and holds them until its transaction ends: a meter's materialized view is created while its event
type's lock is held exclusively, so every batch numbered before that moment is in the table by then and every
later one goes through the view (`metering.clickhouse.views`).
"""

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from metering.clickhouse.connection import EVENTS_TABLE, client
from metering.events.ingest import IngestBatch

DEDUP_WINDOW = dt.timedelta(days=32)
COLUMNS = ["source", "id", "type", "subject", "time", "data", "ingested_at"]
TYPE_LOCK = 0x6F6D6374  # "omct" + hashtext(event type): inserts shared, a meter's view creation exclusive

_NEW_KEYS_SQL = """
INSERT INTO metering_clickhouseeventkey (source, id)
SELECT * FROM unnest(%s::text[], %s::text[])
ON CONFLICT (source, id) DO NOTHING
RETURNING source, id
"""


def insert_batch(batch: IngestBatch) -> int:
    """Store the batch's new events all-or-nothing; returns how many were new."""
    now = timezone.now()
    rows: dict[tuple[str, str], list[Any]] = {}
    for event, time in zip(batch.events, batch.times, strict=True):
        key = (event["source"], event["id"])
        if key not in rows:  # the first of each (source, id) in the body
            data = event.get("data")
            rows[key] = [*key, event["type"], event["subject"], time,
                         orjson.dumps(data).decode() if data is not None else "", now]
    return insert_rows(rows)


def insert_rows(rows: Mapping[tuple[str, str], Sequence[Any]]) -> int:
    """Insert the rows (`COLUMNS`, by their (source, id)) whose key is new, inside one PostgreSQL transaction that
    records the keys; returns how many were new."""
    keys = sorted(rows)
    with transaction.atomic(), connection.cursor() as cur:
        lock_types(cur, sorted({row[2] for row in rows.values()}), exclusive=False)
        cur.execute(_NEW_KEYS_SQL, [[k[0] for k in keys], [k[1] for k in keys]])
        new = sorted(cur.fetchall())
        if not new:
            return 0
        cur.execute("SELECT nextval('metering_clickhouse_batch')")
        [(batch,)] = cur.fetchall()
        token = hashlib.sha256(orjson.dumps(new)).hexdigest()
        # a batch may hold events of any number of months (a client's clock decides): ClickHouse refuses by default
        # a block over more than 100 monthly partitions, which would refuse a valid batch (the meters' views too)
        client().insert(EVENTS_TABLE, [[*rows[tuple(key)], batch] for key in new], column_names=[*COLUMNS, "batch"],
                        settings={"insert_deduplication_token": token, "max_partitions_per_insert_block": 0})
    return len(new)


def lock_types(cur: CursorWrapper, types: list[str], *, exclusive: bool) -> None:
    """Take the event types' ingest locks until the transaction ends, in key order."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    cur.execute(
        f"SELECT {function}(%s, k) FROM (SELECT DISTINCT hashtext(t) AS k FROM unnest(%s::text[]) AS t ORDER BY k "
        "OFFSET 0) AS keys",
        [TYPE_LOCK, types],
    )


def keys_purge(*, at: dt.datetime) -> int:
    """Delete the de-duplication keys stored before `at - DEDUP_WINDOW`; returns how many."""
    with connection.cursor() as cur:
        cur.execute("DELETE FROM metering_clickhouseeventkey WHERE stored_at < %s", [at - DEDUP_WINDOW])
        return cur.rowcount
