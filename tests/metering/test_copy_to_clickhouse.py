"""`manage.py events_copy_to_clickhouse`: PostgreSQL's events into ClickHouse (chDB in process), resumable and
idempotent, with the same query results on both stores afterwards."""

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from metering.clickhouse import views
from metering.clickhouse.connection import EVENTS_TABLE, client
from metering.clickhouse.copy import copy_from_postgres
from metering.event_store import QuerySpec, event_store
from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
EVENTS = [{"id": f"c{i}", "subject": f"s{i % 2}", "time": T0 + dt.timedelta(minutes=i), "data": {"tokens": i}}
          for i in range(1, 8)]  # tokens 1..7: s1 has 1+3+5+7 = 16, s0 has 2+4+6 = 12


class Interrupted(Exception):
    pass


def totals(settings, backend, meter):
    settings.OPENMETER_EVENTS_BACKEND = backend
    spec = QuerySpec(meter=meter, start=T0, end=T0 + dt.timedelta(days=1), group_by=["subject"])
    return {r.subject: r.value for r in event_store().query(spec)}


def test_copy_is_resumable_and_idempotent(settings, clickhouse):
    meter = MeterFactory(aggregation="SUM", value_property="$.tokens", group_by={})
    ingest(EVENTS)
    ingest([{"id": "other", "source": "elsewhere", "subject": "s0", "time": T0, "data": {"tokens": "0.5"}}])

    def stop_after_first_chunk(seq, read, new):
        raise Interrupted

    with pytest.raises(Interrupted):
        copy_from_postgres(chunk=3, progress=stop_after_first_chunk)
    assert client().query(f"SELECT count() FROM {EVENTS_TABLE}").result_rows == [(3,)]

    out = StringIO()
    call_command("events_copy_to_clickhouse", "--chunk", "3", stdout=out)
    assert "Done: 8 events read, 5 copied" in out.getvalue()  # resumed from the start (the overlap), 3 were there
    out = StringIO()
    call_command("events_copy_to_clickhouse", "--restart", stdout=out)
    assert "Done: 8 events read, 0 copied" in out.getvalue()

    expected = {"s0": Decimal("12.5"), "s1": Decimal("16")}
    assert totals(settings, "postgres", meter) == expected
    assert totals(settings, "clickhouse", meter) == expected
    # an event retried after the switch is a duplicate in ClickHouse too
    settings.OPENMETER_EVENTS_BACKEND = "clickhouse"
    from metering.services import events_ingest

    body = b'{"specversion": "1.0", "id": "c1", "source": "tests", "type": "request", "subject": "s1", "data": {}}'
    assert events_ingest(body=body, content_type="application/cloudevents+json") == 0
    # the meter's aggregates built from the copied events, with the same answers
    out = StringIO()
    call_command("events_store_setup", stdout=out)
    assert "(1 meters built)" in out.getvalue()
    assert views.ready_tables([meter])
    assert totals(settings, "clickhouse", meter) == expected
