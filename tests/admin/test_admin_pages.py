"""Every admin page renders: a smoke test per changelist and add form (the browser check is in test_admin_browser.py);
every changelist reads its page in a number of SQL queries that does not grow with the rows it shows."""

import datetime as dt

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, SolarSchedule

from openmeter_site.core.models import ApiKey
from tests.admin.rich_data import RichData

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_superuser("staff", "staff@example.com", "pw")


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def registered_models():
    return sorted(admin.site._registry, key=lambda m: m._meta.label)


def admin_url(model, view: str) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}")


@pytest.mark.parametrize("model", registered_models(), ids=lambda m: m._meta.label)
def test_changelist_renders(staff_client, model):
    assert staff_client.get(admin_url(model, "changelist")).status_code == 200


@pytest.mark.parametrize("model", registered_models(), ids=lambda m: m._meta.label)
def test_add_form_renders_or_is_forbidden(staff_client, staff_user, model):
    request = RequestFactory().get("/")
    request.user = staff_user
    can_add = admin.site._registry[model].has_add_permission(request)
    assert staff_client.get(admin_url(model, "add")).status_code == (200 if can_add else 403)


def queries_and_rows(client, url: str) -> tuple[int, int]:
    client.get(url)  # caches warmed (content types, the session)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured.captured_queries), len(response.context["cl"].result_list)


def test_every_changelist_reads_a_page_in_the_same_queries_for_1_row_as_for_20(
        staff_client, django_user_model, api, settings, monkeypatch):
    # given every kind of record twice or more (two rich datasets, and the few kinds they hold one of)
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = True  # the datasets' webhook channels point at loopback
    RichData(api, prefix="one").build()
    RichData(api, prefix="two").build()
    django_user_model.objects.create_user("clerk", is_staff=True)
    Group.objects.create(name="Finance")
    ApiKey.issue("second backend")
    for hour in (1, 2):
        ClockedSchedule.objects.create(clocked_time=dt.datetime(2026, 1, 1, hour, tzinfo=dt.UTC))
        CrontabSchedule.objects.create(hour=str(hour))
    SolarSchedule.objects.create(event="sunrise", latitude=52.5, longitude=13.4)
    SolarSchedule.objects.create(event="sunset", latitude=52.5, longitude=13.4)

    # when each changelist is read one row to a page, then twenty
    growing, thin = [], []
    for model in registered_models():
        url = admin_url(model, "changelist")
        monkeypatch.setattr(admin.site._registry[model], "list_per_page", 1)
        one, _ = queries_and_rows(staff_client, url)
        monkeypatch.setattr(admin.site._registry[model], "list_per_page", 20)
        many, rows = queries_and_rows(staff_client, url)
        if many != one:
            growing.append(f"{model._meta.label}: {one} queries for 1 row, {many} for {rows}")
        if rows < 2:
            thin.append(model._meta.label)

    # then none reads more for more rows (and every list had more than one row to show)
    assert not growing, growing
    assert not thin, thin
