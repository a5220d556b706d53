"""Event stores side by side: ingest and meter queries on PostgreSQL's store and on ClickHouse's, same data.

    BENCH_DATABASE_URL=postgres://.../om_store_bench_1m REDIS_URL=... .venv/bin/python bench/event_stores.py \
        [--events 1000000] [--runs 30] [--batches 30] [--raw-runs 3] [--reuse]

Both stores get the events of `bench/meter_query.py` (1,000 subjects, 30 days, tokens and 5 models), generated
in SQL: PostgreSQL's then folded into rollups by the real fold, ClickHouse's then aggregated into the meter's
buckets by the real build (its materialized view and backfill). ClickHouse runs in process (chDB on disk under
/tmp: the same engine and SQL as a server, without the HTTP round trip a server adds). `--reuse` keeps both
stores' events, rollups and buckets from an earlier run of the same size (give each size its own database).
Then, in this process and in the same run for both stores:
  - ingest: `batches` batches of 1,000 new events through `metering.services.events_ingest` (validation, then the
    store's de-duplicated insert), events per second;
  - meter queries through `EventStore.query`: one subject (month, DAY windows, by model) and all subjects (same);
  - an entitlement's usage through `EventStore.usage_ranges` (one subject, the month and 3 phases);
  - ClickHouse only: the all-subjects query from the raw events (what it reads while a meter is being built, and
    what every query read before the buckets), `--raw-runs` times.
Prints figures beside the load average; asserts nothing.
"""

import argparse
import datetime as dt
import os
import random
import time
from unittest import mock

import orjson
from _support import load_average, ms, prepare_database, setup_django
from meter_query import END, START, SUBJECTS, fold, load_events, timed

MODELS = ["gpt-4", "gpt-4o", "gpt-3.5", "claude", "llama"]
CLICKHOUSE_PATH = "/tmp/om_bench_chdb_{events}"

# the events of bench/meter_query.py's GENERATE_SQL, written for ClickHouse
CLICKHOUSE_GENERATE = """
INSERT INTO om_events (source, id, type, subject, time, data, ingested_at)
SELECT 'bench', concat('bench-', toString(number)), 'prompt', concat('customer-', toString(number % 1000)),
       fromUnixTimestamp64Micro(toInt64({start} + number / {total} * {span}) - (number % 97) * 1000000, 'UTC'),
       concat('{{"tokens": ', toString((number * 7919) % 5000 + 1), ', "model": "',
              ['gpt-4', 'gpt-4o', 'gpt-3.5', 'claude', 'llama'][1 + intDiv(number, 1000) % 5], '", "type": "input"}}'),
       now64(6)
FROM numbers({lo}, {count})
"""


def load_clickhouse(total: int) -> None:
    from metering.clickhouse.connection import EVENTS_TABLE, client, schema_ensure

    schema_ensure()
    client().command(f"TRUNCATE TABLE {EVENTS_TABLE}")
    found = client().query("SELECT name, engine = 'MaterializedView' FROM system.tables "
                           "WHERE database = currentDatabase() AND startsWith(name, 'om_meter_')").result_rows
    for name, is_view in sorted(found, key=lambda row: not row[1]):  # an earlier run's meters: views first
        client().command(f"DROP {'VIEW' if is_view else 'TABLE'} `{name}`")
    started = time.perf_counter()
    start = int(START.timestamp() * 1_000_000)
    for lo in range(1, total + 1, 1_000_000):
        count = min(1_000_000, total - lo + 1)
        client().command(CLICKHOUSE_GENERATE.format(start=start, total=total, span=30 * 86_400 * 1_000_000, lo=lo,
                                                    count=count))
    client().command(f"OPTIMIZE TABLE {EVENTS_TABLE} FINAL")
    print(f"  ClickHouse: generated {total:,} events in {time.perf_counter() - started:.1f} s (SQL, then merged)")


def build_clickhouse(meter) -> None:
    """The meter's buckets, as the backfill task builds them (view, then the stored events aggregated)."""
    from metering.clickhouse import views
    from metering.clickhouse.connection import client

    if views.ready_tables([meter]):
        return
    started = time.perf_counter()
    views.build(meter.pk)
    elapsed = time.perf_counter() - started
    table = views.ready_tables([meter])[meter.pk]
    rows = client().query(f"SELECT resolution, count() FROM `{table}` GROUP BY 1 ORDER BY 1").result_rows
    print(f"  ClickHouse: built the meter's buckets in {elapsed:.1f} s; bucket rows by resolution (1=minute, 2=hour, "
          f"3=day, unmerged): {dict(rows)}")


def ingest_rate(store: str, batches: int) -> str:
    """Events per second through the ingest service, batches of 1,000 new events (after one batch of warm-up)."""
    from metering.services import events_ingest

    bodies = []
    for b in range(batches + 1):
        events = [
            {"specversion": "1.0", "id": f"ingest-{store}-{os.getpid()}-{b}-{i}", "source": "bench", "type": "prompt",
             "subject": f"customer-{random.randrange(SUBJECTS)}",
             "time": (START + dt.timedelta(seconds=random.randrange(30 * 86_400))).isoformat(),
             "data": {"tokens": random.randrange(1, 5000), "model": random.choice(MODELS), "type": "input"}}
            for i in range(1000)
        ]
        bodies.append(orjson.dumps(events))
    events_ingest(body=bodies.pop(), content_type="application/cloudevents-batch+json")
    started = time.perf_counter()
    stored = sum(events_ingest(body=body, content_type="application/cloudevents-batch+json") for body in bodies)
    elapsed = time.perf_counter() - started
    return f"{stored / elapsed:,.0f} events/s ({stored:,} events in {elapsed:.1f} s)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--raw-runs", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="keep the events of a previous run of this size")
    args = parser.parse_args()
    os.environ["CLICKHOUSE_URL"] = f"chdb://{CLICKHOUSE_PATH.format(events=args.events)}"

    prepare_database(fresh=not args.reuse)
    setup_django()
    from django.conf import settings

    from metering.event_store import QuerySpec, event_store
    from metering.models import Meter

    print(f"event stores side by side: {args.events:,} events, {SUBJECTS} subjects, 30 days; {load_average()}")
    meter = Meter.objects.filter(slug="bench_tokens", deleted_at__isnull=True).first() or Meter.objects.create(
        slug="bench_tokens", name="bench", aggregation="SUM", event_type="prompt", value_property="$.tokens",
        group_by={"model": "$.model", "type": "$.type"})
    if not args.reuse:
        load_events(args.events)
        fold(args.events)
        settings.OPENMETER_EVENTS_BACKEND = "clickhouse"
        load_clickhouse(args.events)
    settings.OPENMETER_EVENTS_BACKEND = "clickhouse"
    build_clickhouse(meter)

    def subject() -> str:
        return f"customer-{random.randrange(SUBJECTS)}"

    def one() -> QuerySpec:
        return QuerySpec(meter=meter, start=START, end=END, window_size="DAY", subjects=[subject()],
                         group_by=["subject", "model"], fresh_meter=True)

    every = QuerySpec(meter=meter, start=START, end=END, window_size="DAY", group_by=["model"], fresh_meter=True)
    phases = [(START, END), (START, START + dt.timedelta(days=10)), (START + dt.timedelta(days=10), START +
              dt.timedelta(days=20)), (START + dt.timedelta(days=20), END)]
    results, answers = {}, {}
    for store in ("postgres", "clickhouse"):
        settings.OPENMETER_EVENTS_BACKEND = store
        events = event_store()
        for _ in range(3):  # warm-up: connections, caches, prepared statements
            events.query(one())
            events.query(every)
        results[store] = {
            "one subject": ms(timed(lambda events=events: events.query(one()), args.runs)),
            "all subjects": ms(timed(lambda events=events: events.query(every), args.runs)),
            "usage ranges": ms(timed(lambda events=events: events.usage_ranges(
                meter=meter, subjects=[subject()], ranges=phases, fresh_meter=True), args.runs)),
        }
        answers[store] = events.query(every)
        results[store]["rows"] = str(len(answers[store]))
        print(f"  {store}: queries done; {load_average()}")
    from metering.clickhouse import query, views

    with mock.patch.object(views, "ready_tables", return_value={}):  # as while the meter is being built
        results["clickhouse"]["raw"] = ms(timed(lambda: query.run_query(every), args.raw_runs))
    results["postgres"]["raw"] = "-"
    print(f"  clickhouse: raw query done; {load_average()}")
    for store in ("postgres", "clickhouse"):  # after the queries: both stores answer them on the same data
        settings.OPENMETER_EVENTS_BACKEND = store
        results[store]["ingest"] = ingest_rate(store, args.batches)
        print(f"  {store}: ingest done; {load_average()}")

    print(f"  {'':44}{'PostgreSQL (rollups + tail)':40}ClickHouse (chDB in process, buckets + edges)")
    for label, key in (("ingest, batches of 1,000 (in process)", "ingest"),
                       ("one subject, month, DAY, by model", "one subject"),
                       ("all subjects, month, DAY, by model", "all subjects"),
                       ("usage of one subject over 4 ranges", "usage ranges"), ("rows of the all-subjects query", "rows"),
                       ("all subjects from the raw events", "raw")):
        print(f"  {label:44}{results['postgres'][key]:40}{results['clickhouse'][key]}")
    print(f"  same all-subjects rows on both stores: {'yes' if answers['postgres'] == answers['clickhouse'] else 'NO'}")
    print(f"  after: {load_average()}")


if __name__ == "__main__":
    main()
