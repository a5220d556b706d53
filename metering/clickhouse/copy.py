"""Copying the events of PostgreSQL's store into ClickHouse's (`manage.py events_copy_to_clickhouse`).

Resumable and idempotent: events are read in seq order, a chunk at a time, and stored as ingest stores them
(their keys in `metering_clickhouseeventkey`, only new keys inserted), so a chunk copied twice is stored once.
After each chunk the last seq copied is kept in ClickHouse (`om_checkpoints`); a later run starts
`SEQ_OVERLAP` seqs before it, for events that committed late with a lower seq.
"""

from collections.abc import Callable

from metering.clickhouse.connection import CHECKPOINTS_TABLE, client, schema_ensure
from metering.clickhouse.sql import literal
from metering.clickhouse.store import insert_rows
from metering.postgres.events import SEQ_OVERLAP, events_after

CHECKPOINT = "copy_from_postgres"


def checkpoint() -> int:
    rows = client().query(
        f"SELECT position FROM {CHECKPOINTS_TABLE} FINAL WHERE name = {literal(CHECKPOINT)}").result_rows
    return rows[0][0] if rows else 0


def _checkpoint_set(position: int) -> None:
    client().command(
        f"INSERT INTO {CHECKPOINTS_TABLE} (name, position, at) VALUES ({literal(CHECKPOINT)}, {position}, now64(6))")


def copy_from_postgres(*, chunk: int = 50_000, restart: bool = False,
                       progress: Callable[[int, int, int], None] | None = None) -> tuple[int, int]:
    """Copy every event not copied yet; returns (events read, events new to ClickHouse). `progress` is called
    after each chunk with (last seq copied, read, new so far)."""
    schema_ensure()
    after = 0 if restart else max(checkpoint() - SEQ_OVERLAP, 0)
    read = new = 0
    while rows := events_after(after, chunk):
        new += insert_rows({
            (source, event_id): [source, event_id, type_, subject, time, data or "", ingested_at]
            for _, source, event_id, type_, subject, time, data, ingested_at in rows
        })
        read += len(rows)
        after = rows[-1][0]
        _checkpoint_set(after)
        if progress is not None:
            progress(after, read, new)
    return read, new
