import datetime as dt

import pytest

from metering.models import Event, Meter, Subject
from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def data():
    meter = MeterFactory(slug="tokens", event_type="prompt")
    ingest(
        [{"id": "e-1", "subject": "acme", "time": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "data": {"tokens": 1}}],
        type="prompt",
    )
    Subject.objects.create(key="acme", display_name="Acme")
    return meter


def test_changelists_and_forms_render(admin_client, data):
    event = Event.objects.get()
    for url in [
        "/admin/metering/meter/",
        f"/admin/metering/meter/{data.pk}/change/",
        "/admin/metering/meter/add/",
        "/admin/metering/subject/",
        "/admin/metering/event/",
        "/admin/metering/event/?type=prompt&q=acme",
        "/admin/metering/event/?time__gte=2025-12-31T00:00:00%2B00:00",
        f"/admin/metering/event/{event.pk}/change/",
    ]:
        assert admin_client.get(url).status_code == 200, url


def test_event_browser_is_read_only(admin_client, data):
    event = Event.objects.get()
    assert admin_client.get("/admin/metering/event/add/").status_code == 403
    assert admin_client.post(f"/admin/metering/event/{event.pk}/delete/").status_code == 403
    page = admin_client.get(f"/admin/metering/event/{event.pk}/change/").content.decode()
    assert 'name="_save"' not in page


def test_rebuild_action_runs_the_backfill(admin_client, data, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/metering/meter/", {"action": "rebuild_rollups", "_selected_action": [data.pk]}, follow=True
        )
    assert response.status_code == 200
    data.refresh_from_db()
    assert data.backfill_cursor is None  # rebuilt and ready


def test_add_meter_through_the_admin_validates_json_path(admin_client):
    form = {
        "slug": "bad",
        "name": "Bad",
        "aggregation": "SUM",
        "event_type": "x",
        "value_property": "$[[",
        "group_by": "{}",
        "metadata": "{}",
        "annotations": "{}",
    }
    response = admin_client.post("/admin/metering/meter/add/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "invalid JSONPath" in response.content.decode()
    assert not Meter.objects.exists()
    form["value_property"] = "$.tokens"
    assert admin_client.post("/admin/metering/meter/add/", form).status_code == 302
    assert Meter.objects.get().slug == "bad"


def test_soft_delete_action(admin_client, data):
    admin_client.post("/admin/metering/meter/", {"action": "soft_delete", "_selected_action": [data.pk]})
    data.refresh_from_db()
    assert data.deleted_at is not None
