"""The ClickHouse event store (OPENMETER_EVENTS_BACKEND=clickhouse): events in a MergeTree table of a ClickHouse
server or cluster (`CLICKHOUSE_URL`), reached through `clickhouse-connect`, the official client.

- `connection`: the client (one per process and thread) and the schema (`manage.py events_store_setup`);
- `sql`: what a meter reads from an event, written in ClickHouse SQL (values, distinct values, groupBy values),
  and its events as rows shaped like its buckets;
- `store`: storing ingest batches, de-duplicated on (source, id) at ingest;
- `views`: each meter's aggregates, kept at insert by a materialized view, built and dropped with the meter;
- `query`: meter queries and usage ranges, aggregated in ClickHouse over a meter's buckets (its events while
  they are built, and at the sub-minute edges of a range);
- `events`: the event lists, what meters read from events, subjects seen since a position.

Billing, entitlements, customers, the catalog and the meters themselves stay in PostgreSQL.
"""
