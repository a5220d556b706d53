"""Every admin page renders: a smoke test per changelist and add form (the browser check is in test_admin_browser.py)."""

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

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
