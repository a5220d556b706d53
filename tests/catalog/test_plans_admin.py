"""Back office smoke tests: plan editor, actions, read-only published plans, add-ons."""

import pytest

from catalog.models import Addon, Plan, RateCard
from tests.factories import addon_body, flat_fee_card, plan_body

pytestmark = pytest.mark.django_db


def _plan(api, **kwargs) -> Plan:
    response = api.post("/api/v1/plans", plan_body(**kwargs), format="json")
    assert response.status_code == 201
    return Plan.objects.get(pk=response.json()["id"])


def test_plan_changelist_and_editor_render(admin_client, api):
    plan = _plan(api)
    assert admin_client.get("/admin/catalog/plan/").status_code == 200
    assert admin_client.get("/admin/catalog/plan/?status=draft").status_code == 200
    page = admin_client.get(f"/admin/catalog/plan/{plan.pk}/change/")
    assert page.status_code == 200
    assert b"base_fee (flat_fee)" in page.content
    phase = plan.phases.get()
    assert admin_client.get(f"/admin/catalog/planphase/{phase.pk}/change/").status_code == 200


def test_publish_archive_and_new_version_actions(admin_client, api):
    plan = _plan(api)

    admin_client.post("/admin/catalog/plan/", {"action": "publish", "_selected_action": [plan.pk]})
    plan.refresh_from_db()
    assert plan.status == "active"

    admin_client.post("/admin/catalog/plan/", {"action": "new_version", "_selected_action": [plan.pk]})
    draft = Plan.objects.get(key=plan.key, version=2)
    assert draft.status == "draft"
    assert RateCard.objects.filter(phase__plan=draft).count() == 1

    admin_client.post("/admin/catalog/plan/", {"action": "archive", "_selected_action": [plan.pk]})
    plan.refresh_from_db()
    assert plan.status == "archived"


def test_publishing_an_invalid_plan_from_admin_reports_the_error(admin_client, api):
    plan = _plan(api, phases=[{"key": "a", "name": "A", "duration": "P1M", "rateCards": [flat_fee_card()]}])
    response = admin_client.post("/admin/catalog/plan/", {"action": "publish", "_selected_action": [plan.pk]}, follow=True)
    assert b"last phase must be open-ended" in response.content
    plan.refresh_from_db()
    assert plan.status == "draft"


def test_published_plan_is_read_only_in_admin(admin_client, api):
    plan = _plan(api)
    admin_client.post("/admin/catalog/plan/", {"action": "publish", "_selected_action": [plan.pk]})
    page = admin_client.get(f"/admin/catalog/plan/{plan.pk}/change/")
    assert page.status_code == 200
    assert b'name="name"' not in page.content  # no editable inputs
    response = admin_client.post(f"/admin/catalog/plan/{plan.pk}/change/", {"name": "Changed"})
    assert response.status_code == 403
    plan.refresh_from_db()
    assert plan.name == "Pro"


def test_rate_card_form_validates_like_the_api(admin_client, api):
    from catalog.admin_plans import RateCardForm

    form = RateCardForm(data={
        "index": 0, "type": "usage_based", "key": "x", "name": "X", "billing_cadence": "P1M",
        "price_json": '{"type": "unit", "amount": "1"}',
    })
    assert not form.is_valid()
    assert "a usage-based price needs a feature with a meter" in str(form.errors)


def test_addon_admin_actions(admin_client, api):
    addon_id = api.post("/api/v1/addons", addon_body(), format="json").json()["id"]
    assert admin_client.get("/admin/catalog/addon/").status_code == 200
    assert admin_client.get(f"/admin/catalog/addon/{addon_id}/change/").status_code == 200
    admin_client.post("/admin/catalog/addon/", {"action": "publish", "_selected_action": [addon_id]})
    assert Addon.objects.get().status == "active"
