"""The PostgreSQL event store: everything that reads or writes the metering tables' events and rollups.

- `store`: storing ingest batches (de-duplicated on source and id);
- `fold`: folding stored events into the per-meter rollups, and (re)building a meter's rollups (backfill);
- `query`: meter queries over rollups plus the not-yet-folded tail (the API, invoices);
- `usage`: a meter's total over many time ranges in one statement (entitlement values).

Kept together so that they can sit behind one event-store interface with other backends beside them.
"""
