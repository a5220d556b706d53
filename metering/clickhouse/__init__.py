"""The ClickHouse event store (OPENMETER_EVENTS_BACKEND=clickhouse): events in a MergeTree table of a ClickHouse
server or cluster (`CLICKHOUSE_URL`), reached through `clickhouse-connect`, the official client.

- `connection`: the client (one per process and thread) and the schema (`manage.py events_store_setup`);
- `sql`: what a meter reads from an event, written in ClickHouse SQL (values, distinct values, groupBy values);
- `store`: storing ingest batches, de-duplicated on (source, id) at ingest;
- `query`: meter queries and usage ranges, aggregated in ClickHouse over the events;
- `events`: the event lists, what meters read from events, subjects seen since a position.

Billing, entitlements, customers, the catalog and the meters themselves stay in PostgreSQL.
"""
