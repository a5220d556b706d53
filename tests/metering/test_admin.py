"""Metering in the back office (Django test client): meters on typed forms through the meter services, a meter's
usage query (table and chart), and the event browser by subject or customer with a chosen meter's value per event.
Browser tests: tests/metering/test_usage_browser.py."""

import datetime as dt

import pytest
from django.urls import reverse

from customers.models import CustomerSubject
from metering.models import Event, Meter, Subject
from tests.factories import CustomerFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

T = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


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
        "/admin/metering/event/?meter=tokens",
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


# --- meters on typed forms -----------------------------------------------------------------------------------------


def meter_form(**values: object) -> dict:
    data: dict[str, object] = {"name": "Tokens", "slug": "tokens", "description": "", "event_type": "prompt",
                               "aggregation": "SUM", "value_property": "$.tokens", "group_by__key": ["model"],
                               "group_by__value": ["$.model"], "metadata__key": [""], "metadata__value": [""]}
    data.update(values)
    return data


def test_operator_creates_a_meter_with_group_by_rows(admin_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/metering/meter/add/", meter_form())
    meter = Meter.objects.get()
    assert response["Location"] == reverse("admin:metering_meter_change", args=[meter.pk])
    assert (meter.slug, meter.aggregation, meter.value_property, meter.group_by) == (
        "tokens", "SUM", "$.tokens", {"model": "$.model"})


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"value_property": "$[["}, "value_property", "invalid JSONPath"),
        ({"value_property": ""}, "value_property", "required for SUM meters"),
        ({"group_by__key": ["subject"]}, "group_by", "is reserved"),
        ({"slug": "taken"}, "slug", "already exists"),
        ({"slug": "Tokens!"}, "slug", "Enter a valid value"),
    ],
)
def test_meter_refusals_are_shown_on_the_field(admin_client, values, field, message):
    MeterFactory(slug="taken")
    response = admin_client.post("/admin/metering/meter/add/", meter_form(**values))
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors.get(field, [])), response.context["form"].errors
    assert list(Meter.objects.values_list("slug", flat=True)) == ["taken"]


def test_edit_action_changes_name_and_group_by_and_rebuilds(admin_client, data, django_capture_on_commit_callbacks):
    url = reverse("admin:metering_meter_do", args=[data.pk, "edit"])
    assert admin_client.post(reverse("admin:metering_meter_change", args=[data.pk]), {"name": "x"}).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {"name": "LLM tokens", "description": "", "group_by__key": ["model", "region"],
                                "group_by__value": ["$.model", "$.region"], "metadata__key": [""],
                                "metadata__value": [""]})
    data.refresh_from_db()
    assert (data.name, data.group_by) == ("LLM tokens", {"model": "$.model", "region": "$.region"})
    assert data.backfill_cursor is None  # rebuilt for the new group-by, and ready


def test_rebuild_action_runs_the_backfill(admin_client, data, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/metering/meter/", {"action": "rebuild_rollups", "_selected_action": [data.pk]}, follow=True
        )
    assert response.status_code == 200
    data.refresh_from_db()
    assert data.backfill_cursor is None  # rebuilt and ready


def test_soft_delete_asks_first(admin_client, data):
    page = admin_client.post("/admin/metering/meter/", {"action": "soft_delete", "_selected_action": [data.pk]})
    assert b"their events are kept" in page.content
    data.refresh_from_db()
    assert data.deleted_at is None
    admin_client.post("/admin/metering/meter/", {"action": "soft_delete", "_selected_action": [data.pk],
                                                 "confirmed": "yes"})
    data.refresh_from_db()
    assert data.deleted_at is not None
    assert Event.objects.count() == 1


# --- a meter's usage ------------------------------------------------------------------------------------------------


@pytest.fixture
def usage():
    """Tokens by model: Berlin is UTC+1 in March, so 23:30 UTC on the 1st is already the 2nd there."""
    meter = MeterFactory(slug="tokens", name="Tokens", event_type="prompt", group_by={"model": "$.model"})
    acme = CustomerFactory(key="acme", name="Acme", subjects=["acme-app"])
    ingest([
        {"subject": "acme-app", "time": T + dt.timedelta(hours=10), "data": {"tokens": 100, "model": "gpt"}},
        {"subject": "acme-app", "time": T + dt.timedelta(hours=23, minutes=30), "data": {"tokens": 7, "model": "gpt"}},
        {"subject": "acme", "time": T + dt.timedelta(days=1, hours=5), "data": {"tokens": 20, "model": "claude"}},
        {"subject": "other", "time": T + dt.timedelta(days=1, hours=6), "data": {"tokens": 1000, "model": "gpt"}},
    ], type="prompt")
    return meter, acme


def query(admin_client, meter, **params: object):
    q = {"usage-start": "2026-03-01", "usage-end": "2026-03-02", "usage-window": "DAY", "usage-zone": "Europe/Berlin",
         **{f"usage-{k}": v for k, v in params.items()}}
    return admin_client.get(reverse("admin:metering_meter_change", args=[meter.pk]), q)


def test_usage_by_day_in_the_chosen_zone_with_a_total_and_a_chart(admin_client, usage):
    meter, _ = usage
    response = query(admin_client, meter)
    result = response.context["usage"]
    assert [(r["cells"], r["value"]) for r in result["rows"]] == [
        (["2026-03-01 Sun"], "100"), (["2026-03-02 Mon"], "1,027")]  # 7 + 20 + 1000 on Berlin's 2nd
    assert result["total"] == "1,127"
    chart = str(result["chart"])
    assert chart.count('class="om-bar"') == 2 and "Mar 02: 1,027" in chart


def test_usage_by_model_for_one_customer_through_usage_attribution(admin_client, usage):
    meter, _ = usage
    result = query(admin_client, meter, window="", group_by="model", customer="acme").context["usage"]
    assert result["columns"] == ["window", "customer", "model"]
    assert [(r["cells"], r["value"]) for r in result["rows"]] == [
        (["whole period", "Acme", "claude"], "20"), (["whole period", "Acme", "gpt"], "107")]
    assert result["total"] == "127" and result["chart"] is None


def test_usage_of_a_max_meter_has_no_total(admin_client):
    meter = MeterFactory(slug="seats", aggregation="MAX", event_type="seats", value_property="$.n", group_by={})
    ingest([{"subject": "s", "time": T + dt.timedelta(hours=1), "data": {"n": 3}},
            {"subject": "s", "time": T + dt.timedelta(days=1, hours=1), "data": {"n": 5}}], type="seats")
    result = query(admin_client, meter).context["usage"]
    assert [r["value"] for r in result["rows"]] == ["3", "5"]
    assert result["total"] is None and 'class="om-bar"' in str(result["chart"])


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"zone": "Mars/Olympus"}, None, "unknown time zone"),  # the service's rejection
        ({"window": "MINUTE", "start": "2026-02-01"}, "window", "minute windows for at most 2 days"),
        ({"customer": "nobody"}, "customer", "No customer with key or id 'nobody'"),
        ({"end": "2026-02-01"}, "end", "ends before it starts"),
    ],
)
def test_usage_query_refusals_are_shown_on_the_form(admin_client, usage, params, field, message):
    meter, _ = usage
    response = query(admin_client, meter, **params)
    assert response.status_code == 200
    form = response.context["usage_form"]
    errors = form.non_field_errors() if field is None else form.errors.get(field, [])
    assert message in " ".join(errors), form.errors
    assert not response.context["usage"]


def test_meter_page_opens_on_the_last_30_days(admin_client, usage):
    meter, _ = usage
    response = admin_client.get(reverse("admin:metering_meter_change", args=[meter.pk]))
    assert response.context["usage_form"]["window"].value() == "DAY"
    assert '<figure class="om-chart">' in response.content.decode()


# --- the event browser ----------------------------------------------------------------------------------------------


def test_event_browser_finds_a_customers_events_through_usage_attribution(admin_client, usage):
    _, acme = usage
    by_key = admin_client.get("/admin/metering/event/", {"q": "acme"}).context["cl"].result_list
    assert sorted(e.subject for e in by_key) == ["acme", "acme-app", "acme-app"]
    by_name = admin_client.get("/admin/metering/event/", {"q": "ACME"}).context["cl"].result_list
    assert len(by_name) == 3
    by_filter = admin_client.get("/admin/metering/event/", {"customer": acme.pk})
    assert len(by_filter.context["cl"].result_list) == 3
    assert f"customer={acme.pk}" in by_filter.content.decode()  # the active filter is shown
    exact_subject = admin_client.get("/admin/metering/event/", {"q": "other"}).context["cl"].result_list
    assert [e.subject for e in exact_subject] == ["other"]
    # a subject moved to another customer leaves the first one's events
    CustomerSubject.objects.filter(subject_key="acme-app").delete()
    assert len(admin_client.get("/admin/metering/event/", {"customer": acme.pk}).context["cl"].result_list) == 1


def test_event_browser_shows_the_chosen_meters_value_and_groups_per_event(admin_client, usage,
                                                                          django_assert_max_num_queries):
    ingest([{"subject": "acme-app", "time": T + dt.timedelta(hours=1), "data": {"model": "gpt"}}], type="prompt")
    with django_assert_max_num_queries(16):  # the same for 5 events or 100: readings and customers per page
        page = admin_client.get("/admin/metering/event/", {"meter": "tokens"}).content.decode()
    rows = page.split('id="result_list"')[1].split("</table>")[0].split("<tr")[2:]  # after the header row
    assert len(rows) == 5
    newest = rows[0]  # ordered by time, newest first: the "other" subject's event
    assert "1,000" in newest and "model: gpt" in newest
    assert "Acme" in rows[1] and ">20<" in rows[1] and "model: claude" in rows[1]
    assert "not counted" in rows[4]  # the event without tokens


def test_event_page_shows_its_customer_and_what_each_meter_reads(admin_client, usage):
    MeterFactory(slug="prompts", name="Prompts", aggregation="COUNT", event_type="prompt", group_by={})
    event = Event.objects.get(data__tokens=100)
    page = admin_client.get(reverse("admin:metering_event_change", args=[event.pk])).content.decode()
    assert "Acme" in page
    assert "Tokens (SUM): <strong>100</strong> — model: gpt" in page
    assert "Prompts (COUNT): <strong>1</strong>" in page
