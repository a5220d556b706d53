"""The ClickHouse client and schema.

`CLICKHOUSE_URL` names the server and database: `http(s)://user:password@host:port/database` (a server, or any
node of a cluster), or `chdb:///path` / `chdb://memory` for ClickHouse's engine inside this process (`chdb`: tests
and single-process trials; one process only). With `CLICKHOUSE_CLUSTER` set, the table is created `ON CLUSTER`
as a ReplicatedMergeTree (one shard, its replicas).

The events table: ordered by (type, subject, time), so what reads a meter's events reads those of its type, and of
its subjects when it names them, and nothing else; partitioned by month of the event time. `batch` numbers the
insert that stored an event (`metering.clickhouse.store`; 0 for events loaded otherwise), which tells a meter's
materialized view and its backfill apart (`metering.clickhouse.views`). Each meter's aggregates live in tables of
their own (`views`).
"""

import os
import threading

import clickhouse_connect
from clickhouse_connect import common
from clickhouse_connect.driver.client import Client
from django.conf import settings

EVENTS_TABLE = "om_events"
CHECKPOINTS_TABLE = "om_checkpoints"  # how far a copy into this store got (`metering.clickhouse.copy`)
# no session: a session serialises its queries, and a client is shared by the requests of its thread
common.set_setting("autogenerate_session_id", False)

_local = threading.local()


def client() -> Client:
    """This process's and thread's client of `CLICKHOUSE_URL` (a forked worker makes its own)."""
    key = (os.getpid(), settings.CLICKHOUSE_URL)
    if getattr(_local, "key", None) != key:
        _local.client, _local.key = clickhouse_connect.get_client(dsn=settings.CLICKHOUSE_URL), key
    return _local.client


def on_cluster() -> str:
    cluster = os.environ.get("CLICKHOUSE_CLUSTER", "")
    return f" ON CLUSTER `{cluster}`" if cluster else ""


def engine(kind: str = "") -> str:
    """`MergeTree`, or on a cluster `ReplicatedMergeTree` at the server's default replica path (`{uuid}`, `{shard}`,
    `{replica}` macros)."""
    return f"{'Replicated' if on_cluster() else ''}{kind}MergeTree"


def schema_statements() -> list[str]:
    return [
        f"""
CREATE TABLE IF NOT EXISTS {EVENTS_TABLE}{on_cluster()} (
    source String,
    id String,
    type LowCardinality(String),
    subject String,
    time DateTime64(6, 'UTC'),
    data String,
    ingested_at DateTime64(6, 'UTC'),
    batch UInt64 DEFAULT 0,
    INDEX ingested_at_range ingested_at TYPE minmax GRANULARITY 1,
    INDEX event_id id TYPE bloom_filter GRANULARITY 4
) ENGINE = {engine()}
PARTITION BY toYYYYMM(time)
ORDER BY (type, subject, time)
SETTINGS non_replicated_deduplication_window = 1000
""",
        f"""
CREATE TABLE IF NOT EXISTS {CHECKPOINTS_TABLE}{on_cluster()} (name String, position Int64, at DateTime64(6, 'UTC'))
ENGINE = {engine("Replacing")}(at) ORDER BY name
""",
    ]


def schema_ensure() -> None:
    """Create the tables if they are missing, and add columns added since (idempotent)."""
    for statement in schema_statements():
        client().command(statement)
    found = client().query(f"SELECT count() FROM system.columns WHERE database = currentDatabase() "
                           f"AND table = '{EVENTS_TABLE}' AND name = 'batch'").result_rows
    if not found[0][0]:  # a table made before `batch` existed: its events are all older than any meter's view
        client().command(f"ALTER TABLE {EVENTS_TABLE}{on_cluster()} ADD COLUMN IF NOT EXISTS batch UInt64 DEFAULT 0")
