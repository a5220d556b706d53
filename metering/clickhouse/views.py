"""Per-meter aggregates in ClickHouse: a table per meter, kept current at insert by a materialized view over the
events table, and backfilled from the events stored before the view existed.

A meter's table (`AggregatingMergeTree`) holds, per (resolution, subject, bucket, distinct value, groupBy values),
the partials of its events (`metering.clickhouse.sql.partials`): minute, hour and UTC-day buckets of each subject,
and the same of all subjects together (subject ''). Its materialized view reads each event's JSON once, when the
event is inserted, and adds the event to its six buckets; ClickHouse merges the rows of a bucket in the
background, and queries combine whatever rows a bucket still has. So a query costs what its buckets cost
(`metering.clickhouse.query`), not what its events cost.

A build (a new meter, a changed groupBy, the admin's rebuild, a lost build) runs in the `metering.backfill_meter`
task, one per meter at a time:
  1. the meter's state (`ClickHouseMeterView`, in PostgreSQL) moves to a new generation, not ready: queries read
     the raw events until the build ends; the old generation's view and table are dropped;
  2. the new table is created, then its view while the meter's event type's ingest lock is held exclusively. An
     insert holds that lock (shared) from before it numbers its batch until it is committed, so every batch
     numbered before the view is in the events table by then, and every later one goes through the view: the
     boundary is a batch number drawn under the lock;
  3. the events of batches before the boundary are aggregated into the table, a few days of them per statement;
  4. the state is marked ready, if the meter's definition is still the one built (else the build starts over).
A build interrupted anywhere is started over by `reconcile` (the `metering.resume_backfills` job): the next
generation drops whatever the last one left.
"""

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction

from metering import progress
from metering.clickhouse import sql as ch
from metering.clickhouse.connection import EVENTS_TABLE, client, engine, on_cluster
from metering.clickhouse.store import lock_types
from metering.models import ClickHouseMeterView, Meter, Rollup

BUILD_LOCK = 0x6F6D6376  # "omcv" + hashtext(meter id): one build of a meter's aggregates at a time
BACKFILL_EVENTS = 500_000  # events aggregated per backfill statement (whole UTC days of them)
DAY_MICROS = 86_400_000_000
RESOLUTIONS = ((Rollup.Resolution.MINUTE, 60_000_000), (Rollup.Resolution.HOUR, 3_600_000_000),
               (Rollup.Resolution.DAY, DAY_MICROS))


def table_name(meter_id: str, generation: int) -> str:
    return f"om_meter_{meter_id.lower()}_{generation}"


def definition_of(meter: Meter) -> dict[str, Any]:
    """What a meter's aggregates depend on."""
    return {"aggregation": meter.aggregation, "event_type": meter.event_type,
            "event_from": meter.event_from.isoformat() if meter.event_from else None,
            "value_property": meter.value_property, "group_by": meter.group_by}


def ready_tables(meters: Sequence[Meter]) -> dict[str, str]:
    """The table of each meter whose aggregates are ready for its definition (by meter id); the others are absent."""
    by_id = {m.pk: m for m in meters}
    states = ClickHouseMeterView.objects.filter(meter_id__in=list(by_id), ready=True).values_list(
        "meter_id", "generation", "definition")
    return {meter_id: table_name(meter_id, generation) for meter_id, generation, definition in states
            if definition == definition_of(by_id[meter_id])}


def bucket_extent(table: str) -> tuple[dt.datetime, dt.datetime] | None:
    """(first day, last day) of the table's buckets; None when it has none."""
    [(count, first, last)] = client().query(
        f"SELECT count(), toUnixTimestamp64Micro(min(bucket)), toUnixTimestamp64Micro(max(bucket)) FROM `{table}` "
        f"WHERE resolution = {Rollup.Resolution.DAY} AND subject = ''").result_rows
    return (ch.from_micros(first), ch.from_micros(last)) if count else None


def table_statement(meter: Meter, table: str) -> str:
    groups = [f"{g} Nullable(String)" for g in ch.group_columns(meter)]
    partials = [f"{name} SimpleAggregateFunction({combine}, {type_})" for name, type_, _, combine in ch.partials(meter)]
    columns = ["resolution UInt8", "subject String", f"bucket {ch.TIME}", "uvalue String", *groups, *partials]
    key = ["resolution", "subject", "bucket", "uvalue", *ch.group_columns(meter)]
    return (f"CREATE TABLE IF NOT EXISTS `{table}`{on_cluster()} ({', '.join(columns)}) "
            f"ENGINE = {engine('Aggregating')} PARTITION BY toYYYYMM(bucket) ORDER BY ({', '.join(key)}) "
            # retried inserts are dropped here too (their blocks carry the events insert's token)
            "SETTINGS allow_nullable_key = 1, non_replicated_deduplication_window = 1000")


def bucket_select(meter: Meter, where: Sequence[str]) -> str:
    """The meter's events matching `where`, added up into their six buckets: what its view inserts for each
    insert into the events table, and what its backfill inserts."""
    buckets = ", ".join(
        f"(toUInt8({resolution}), {subject}, toStartOfInterval(e.t, INTERVAL {micros} MICROSECOND))"
        for subject in ("e.subject", "''") for resolution, micros in RESOLUTIONS
    )
    groups = ch.group_columns(meter)
    partials = [f"{combine}({name}) AS {name}" for name, _, _, combine in ch.partials(meter)]
    return (f"SELECT b.1 AS resolution, b.2 AS subject, b.3 AS bucket, {', '.join(['uvalue', *groups, *partials])} "
            f"FROM ({ch.event_rows(meter, where)}) AS e ARRAY JOIN [{buckets}] AS b "
            f"GROUP BY {', '.join(['b.1', 'b.2', 'b.3', 'uvalue', *groups])}")


@contextmanager
def _build_lock(meter_id: str) -> Iterator[None]:
    """Held for a whole build (a session lock, across its transactions); another build of the meter waits."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [BUILD_LOCK, meter_id])
    try:
        yield
    finally:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [BUILD_LOCK, meter_id])


def build(meter_id: str) -> bool:
    """Bring a meter's aggregates up to date: build them for its current definition, or drop them when the meter
    is deleted. Returns whether it built them (False: they were ready, or the meter is gone)."""
    built = False
    with _build_lock(meter_id):
        while True:
            meter = Meter.objects.filter(pk=meter_id, deleted_at__isnull=True).first()
            state = ClickHouseMeterView.objects.filter(meter_id=meter_id).first()
            if meter is None:
                if state is not None:
                    _drop(table_name(meter_id, state.generation))
                    state.delete()
                return built
            definition = definition_of(meter)
            if state is not None and state.ready and state.definition == definition:
                return built
            generation = state.generation + 1 if state is not None else 1
            ClickHouseMeterView.objects.update_or_create(
                meter_id=meter_id, defaults={"generation": generation, "definition": definition, "ready": False})
            if state is not None:
                _drop(table_name(meter_id, state.generation))
            table = table_name(meter_id, generation)
            _drop(table)  # left by a build whose state was lost (a restored database): never added to
            client().command(table_statement(meter, table))
            boundary = _create_view(meter, table)
            _backfill(meter, table, boundary)
            with transaction.atomic():  # ready only if the meter did not change meanwhile (else: the next round)
                current = Meter.objects.select_for_update().filter(pk=meter_id, deleted_at__isnull=True).first()
                if current is not None and definition_of(current) == definition:
                    ClickHouseMeterView.objects.filter(meter_id=meter_id, generation=generation).update(ready=True)
            built = True


def _create_view(meter: Meter, table: str) -> int:
    """Create the table's view under the event type's exclusive ingest lock; returns the boundary: the events of
    batches numbered below it are in the events table, all later ones go through the view."""
    with transaction.atomic(), connection.cursor() as cur:
        lock_types(cur, [meter.event_type], exclusive=True)
        client().command(f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{table}_mv`{on_cluster()} TO `{table}` AS "
                         f"{bucket_select(meter, [])}")
        cur.execute("SELECT nextval('metering_clickhouse_batch')")
        [(boundary,)] = cur.fetchall()
    return boundary


def _backfill(meter: Meter, table: str, boundary: int) -> None:
    """Aggregate the meter's events stored before its view into its table, whole UTC days at a time (at most about
    `BACKFILL_EVENTS` events per statement, so the aggregation stays in memory), reporting progress."""
    before = f"batch < {boundary}"
    if on_cluster():  # every replica holds every batch before the boundary (the insert may have gone to another)
        client().command(f"SYSTEM SYNC REPLICA{on_cluster()} {EVENTS_TABLE}")
    days = [(int(day), int(count)) for day, count in client().query(
        f"SELECT toUnixTimestamp64Micro(toStartOfInterval(time, INTERVAL {DAY_MICROS} MICROSECOND)) AS day, count() "
        f"FROM {EVENTS_TABLE} WHERE type = {ch.literal(meter.event_type)} AND {before} GROUP BY day ORDER BY day"
    ).result_rows]
    total, done = sum(count for _, count in days), 0
    build_id = progress.meter_build_id(meter.pk)
    progress.progress_set(build_id, total=total, success=0, ttl=progress.BACKFILL_TTL)
    for first, last, count in _chunks(days):
        where = [before, f"time >= fromUnixTimestamp64Micro({first}, 'UTC')",
                 f"time < fromUnixTimestamp64Micro({last + DAY_MICROS}, 'UTC')"]
        # the rows are new: no de-duplication by content (two chunks may well aggregate into equal blocks); the days
        # of a chunk may span any number of months
        client().command(f"INSERT INTO `{table}` {bucket_select(meter, where)}",
                         settings={"insert_deduplicate": 0, "max_partitions_per_insert_block": 0})
        done += count
        progress.progress_set(build_id, total=total, success=done, ttl=progress.BACKFILL_TTL)


def _chunks(days: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
    """Runs of consecutive days (first day, last day, events) of at most `BACKFILL_EVENTS` events (or one day)."""
    first = last = events = 0
    for day, count in days:
        if events and events + count > BACKFILL_EVENTS:
            yield first, last, events
            events = 0
        if not events:
            first = day
        last, events = day, events + count
    if events:
        yield first, last, events


def _drop(table: str) -> None:
    """The view first: once it is gone nothing inserts into the table."""
    client().command(f"DROP VIEW IF EXISTS `{table}_mv`{on_cluster()}")
    client().command(f"DROP TABLE IF EXISTS `{table}`{on_cluster()}")


def rebuild_start(meter: Meter) -> None:
    """The meter is new or changed: its aggregates are not ready from this transaction's commit on (queries read
    raw events until `build` ends)."""
    ClickHouseMeterView.objects.update_or_create(meter_id=meter.pk, defaults={"ready": False})


def reconcile() -> int:
    """Build the aggregates of every live meter whose aggregates are not ready for its definition (a lost build,
    a store just switched to), drop those of deleted meters; returns how many meters were built."""
    states = {s.meter_id: s for s in ClickHouseMeterView.objects.all()}
    built = 0
    for meter in Meter.objects.filter(deleted_at__isnull=True):
        state = states.pop(meter.pk, None)
        if state is None or not state.ready or state.definition != definition_of(meter):
            built += build(meter.pk)
    for meter_id in states:  # deleted meters: `build` drops their aggregates
        build(meter_id)
    return built
