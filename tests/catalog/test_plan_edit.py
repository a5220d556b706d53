"""plan_edit and addon_edit: one part of a draft changed from its current state, through plan_update/addon_update
(the API's PUT), under the row lock; addon_new_version copies an add-on."""

import dataclasses
import threading

import pytest
from django.db import connection

from catalog.api.ratecards import validate_rate_card
from catalog.models import Addon, Plan
from catalog.services.addons import addon_edit, addon_new_version, addon_publish
from catalog.services.plans import plan_edit, plan_publish
from openmeter_site.core.errors import InvalidInput
from tests.factories import addon_body, flat_fee_card, plan_body


def _plan(api) -> Plan:
    return Plan.objects.get(pk=api.post("/api/v1/plans", plan_body(), format="json").json()["id"])


@pytest.mark.django_db
def test_plan_edit_changes_one_part_and_keeps_the_rest(api):
    plan = _plan(api)
    edited = plan_edit(plan_id=plan.pk, edit=lambda data: dataclasses.replace(data, name="Pro 2026"))
    assert edited.name == "Pro 2026"
    assert [(c.key, c.price_json["amount"]) for c in edited.phases.get().rate_cards.all()] == [("base_fee", "10")]


@pytest.mark.django_db
def test_plan_edit_keeps_the_rules_of_plan_update(api):
    plan = _plan(api)
    with pytest.raises(InvalidInput, match="duplicate rate card key"):
        plan_edit(plan_id=plan.pk, edit=lambda data: dataclasses.replace(data, phases=[dataclasses.replace(
            data.phases[0], rate_cards=[*data.phases[0].rate_cards, *data.phases[0].rate_cards])]))
    plan_publish(plan_id=plan.pk)
    with pytest.raises(InvalidInput, match="can be updated"):
        plan_edit(plan_id=plan.pk, edit=lambda data: dataclasses.replace(data, name="x"))
    assert Plan.objects.get(pk=plan.pk).name == "Pro"


@pytest.mark.django_db(transaction=True)
def test_two_operators_editing_different_parts_both_keep_their_change(api):
    # given a draft, and two edits that start from the same state: one renames it, one adds a rate card
    plan = _plan(api)
    first_read = threading.Event()

    def rename(data):
        first_read.set()
        return dataclasses.replace(data, name="Renamed")

    def add_card(data):
        phase = data.phases[0]
        return dataclasses.replace(data, phases=[dataclasses.replace(
            phase, rate_cards=[*phase.rate_cards, validate_rate_card(flat_fee_card(key="support", amount="99"))])])

    def other_operator():
        first_read.wait(5)
        try:
            plan_edit(plan_id=plan.pk, edit=add_card)  # waits for the first edit's lock, then reads its result
        finally:
            connection.close()

    # when both run at once
    thread = threading.Thread(target=other_operator)
    thread.start()
    plan_edit(plan_id=plan.pk, edit=rename)
    thread.join(10)

    # then the plan has both changes
    plan = Plan.objects.get(pk=plan.pk)
    assert plan.name == "Renamed"
    assert sorted(c.key for c in plan.phases.get().rate_cards.all()) == ["base_fee", "support"]


@pytest.mark.django_db
def test_addon_edit_and_new_version(api):
    addon = Addon.objects.get(pk=api.post("/api/v1/addons", addon_body(), format="json").json()["id"])
    addon_edit(addon_id=addon.pk, edit=lambda data: dataclasses.replace(data, name="Seats"))
    addon_publish(addon_id=addon.pk)
    draft = addon_new_version(addon_id=addon.pk)
    assert (draft.key, draft.version, draft.name, draft.status) == ("extra_seats", 2, "Seats", "draft")
    assert [c.key for c in draft.rate_cards.all()] == ["seat_fee"]
