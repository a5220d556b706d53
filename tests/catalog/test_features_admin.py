"""Features in the back office (Django test client): created on a typed form through the API's service, read-only
afterwards, archived after a confirmation, never deleted. The browser test is in test_catalog_browser.py."""

import pytest
from django.urls import reverse

from catalog.models import Feature
from tests.factories import FeatureFactory, MeterFactory

pytestmark = pytest.mark.django_db


def feature_form(**values: object) -> dict:
    data: dict[str, object] = {
        "name": "GPT tokens", "key": "gpt_tokens", "meter": "", "group_by_filters__key": [""],
        "group_by_filters__value": [""], "advanced_filters__key": [""], "advanced_filters__op": ["$eq"],
        "advanced_filters__value": [""], "unit_cost": "", "unit_cost_amount": "", "metadata__key": [""],
        "metadata__value": [""],
    }
    data.update(values)
    return data


def test_operator_creates_a_metered_feature_with_filters_and_a_unit_cost(admin_client):
    MeterFactory(slug="tokens", group_by={"model": "$.model", "type": "$.type"})

    response = admin_client.post(reverse("admin:catalog_feature_add"), feature_form(
        meter="tokens", group_by_filters__key=["type"], group_by_filters__value=["input"],
        unit_cost="manual", unit_cost_amount="0.000002"))

    feature = Feature.objects.get(key="gpt_tokens")
    assert response["Location"] == reverse("admin:catalog_feature_change", args=[feature.pk])
    assert (feature.meter_slug, feature.meter_group_by_filters) == ("tokens", {"type": "input"})
    assert feature.unit_cost == {"type": "manual", "amount": "0.000002"}
    page = admin_client.get(response["Location"]).content.decode()
    assert "type = input" in page and "$0.000002 per unit" in page and 'name="name"' not in page


def test_advanced_filters_are_rows_of_key_operator_and_values(admin_client):
    MeterFactory(slug="tokens", group_by={"model": "$.model"})
    admin_client.post(reverse("admin:catalog_feature_add"), feature_form(
        meter="tokens", advanced_filters__key=["model", "model"], advanced_filters__op=["$in", "$nlike"],
        advanced_filters__value=["gpt-4o, gpt-4o-mini", "%preview%"], unit_cost="llm", llm_provider="openai",
        llm_model_property="model", llm_token_type="input"))

    feature = Feature.objects.get(key="gpt_tokens")
    assert feature.advanced_meter_group_by_filters == {"model": {"$in": ["gpt-4o", "gpt-4o-mini"],
                                                                 "$nlike": "%preview%"}}
    assert feature.unit_cost == {"type": "llm", "provider": "openai", "modelProperty": "model", "tokenType": "input"}


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"meter": "tokens", "group_by_filters__key": ["region"], "group_by_filters__value": ["eu"]},
         "group_by_filters", "region not in the meter's groupBy"),
        ({"meter": "tokens", "advanced_filters__key": ["region"], "advanced_filters__op": ["$in"],
          "advanced_filters__value": ["eu, us"]}, "advanced_filters", "region not in the meter's groupBy"),
        ({"key": "taken"}, "key", "already exists"),
        ({"key": "GPT Tokens"}, "key", "lower case letters"),
    ],
)
def test_feature_refusals_are_shown_on_the_field_and_create_nothing(admin_client, values, field, message):
    MeterFactory(slug="tokens", group_by={"model": "$.model"})
    FeatureFactory(key="taken")

    response = admin_client.post(reverse("admin:catalog_feature_add"), feature_form(**values))

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors.get(field, [])), response.context["form"].errors
    assert list(Feature.objects.values_list("key", flat=True)) == ["taken"]


def test_feature_is_read_only_archived_after_confirmation_never_deleted(admin_client):
    feature = FeatureFactory(key="seats", meter=None)
    change = reverse("admin:catalog_feature_change", args=[feature.pk])
    assert admin_client.post(change, {"name": "Changed"}).status_code == 403
    assert admin_client.post(reverse("admin:catalog_feature_delete", args=[feature.pk]), {"post": "yes"}
                             ).status_code == 403

    archive = reverse("admin:catalog_feature_do", args=[feature.pk, "archive"])
    assert b"can no longer be granted" in admin_client.get(archive).content
    feature.refresh_from_db()
    assert feature.archived_at is None
    admin_client.post(archive, {})
    feature.refresh_from_db()
    assert feature.archived_at is not None
