"""The ClickHouse event store in process (chDB, `chdb://memory`: one engine for the whole test process)."""

import pytest


def clickhouse_reset() -> None:
    """An empty store: no events, no copy checkpoint, no meter's view or table (their state in PostgreSQL goes
    with each test's transaction)."""
    from metering.clickhouse.connection import CHECKPOINTS_TABLE, EVENTS_TABLE, client, schema_ensure

    schema_ensure()
    for table in (EVENTS_TABLE, CHECKPOINTS_TABLE):
        client().command(f"TRUNCATE TABLE {table}")
    found = client().query("SELECT name, engine = 'MaterializedView' FROM system.tables "
                           "WHERE database = currentDatabase() AND startsWith(name, 'om_meter_')").result_rows
    for name, is_view in sorted(found, key=lambda row: not row[1]):  # views first
        client().command(f"DROP {'VIEW' if is_view else 'TABLE'} `{name}`")


@pytest.fixture
def clickhouse(settings):
    settings.CLICKHOUSE_URL = "chdb://memory"
    clickhouse_reset()
