"""The ClickHouse event store shared by several processes, as with a server: gunicorn (ingest, queries), a Celery
worker (the fold and resume jobs: the meter's view built there) and this process, all through ClickHouse's HTTP
interface (tests/clickhouse_front.py: chDB behind a small HTTP front, since no ClickHouse server is installed
here)."""

import subprocess
import sys

import orjson
import pytest
import requests

from metering.clickhouse import views
from metering.clickhouse.connection import EVENTS_TABLE, client, schema_ensure
from metering.event_store import QuerySpec, event_store
from metering.models import Meter
from metering.tasks import fold_pending_task, resume_backfills_task
from tests.conftest import ROOT, free_port, gunicorn_server, wait_for_port
from tests.factories import MeterFactory

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clickhouse_url(tmp_path, settings):
    port = free_port()
    front = subprocess.Popen([sys.executable, "tests/clickhouse_front.py", str(port), str(tmp_path / "chdb")], cwd=ROOT)
    try:
        wait_for_port(port, front)
        url = f"http://default@127.0.0.1:{port}/default?compress=False"
        settings.OPENMETER_EVENTS_BACKEND, settings.CLICKHOUSE_URL = "clickhouse", url
        schema_ensure()
        yield url
    finally:
        front.terminate()
        front.wait(timeout=10)


def test_web_worker_and_this_process_share_the_clickhouse_store(clickhouse_url, api_key, start_celery_worker):
    MeterFactory(slug="tokens", value_property="$.tokens", group_by={"model": "$.model"})
    env = {"OPENMETER_EVENTS_BACKEND": "clickhouse", "CLICKHOUSE_URL": clickhouse_url}
    start_celery_worker(env=env)
    events = [{"specversion": "1.0", "source": "live", "type": "request", "id": f"l{i}", "subject": f"s{i % 2}",
               "time": f"2026-03-02T10:0{i}:00Z", "data": {"tokens": i, "model": "a" if i < 3 else "b"}}
              for i in range(1, 6)]  # tokens 1..5: model a 1+2 = 3, model b 3+4+5 = 12
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/cloudevents-batch+json"}

    def post(batch):
        assert requests.post(f"{url}/api/v1/events", data=orjson.dumps(batch), headers=headers,
                             timeout=30).status_code == 204

    def by_model():
        answer = requests.get(f"{url}/api/v1/meters/tokens/query", params={"groupBy": "model"}, headers=headers,
                              timeout=30)
        assert answer.status_code == 200, answer.text
        return sorted((r["groupBy"]["model"], r["value"]) for r in answer.json()["data"])

    with gunicorn_server(**env) as url:
        post(events[:3])
        post(events)  # repeats three events
        assert by_model() == [("a", 3), ("b", 12)]  # from the events: the meter's view is not built yet
        assert resume_backfills_task.delay().get(timeout=60) == 1  # the worker builds it
        post([{**events[0], "id": "l6", "data": {"tokens": 6, "model": "a"}}, events[1]])  # through the view
        assert by_model() == [("a", 9), ("b", 12)]
    meter = Meter.objects.get(slug="tokens")
    assert views.ready_tables([meter])
    assert client().query(f"SELECT count() FROM {EVENTS_TABLE}").result_rows == [(6,)]
    assert [r.value for r in event_store().query(QuerySpec(meter=meter))] == [21]
    assert fold_pending_task.delay().get(timeout=60) == 0  # the worker's store: nothing to fold in ClickHouse
