"""Deprecated operations no SDK method calls: `POST /plans/{planIdOrKey}/next`, `POST /subscriptions/{id}/restore`."""

import pytest

from subscriptions.models import Subscription
from tests.factories import CustomerFactory
from tests.subscriptions.test_lifecycle import assert_problem, get, post_at, publish_plan, subscribe, trial_plan, utc

pytestmark = pytest.mark.django_db


def test_restore_deletes_the_scheduled_successor_and_continues(api, tokens):
    publish_plan(api, trial_plan())
    publish_plan(api, trial_plan("team", fee="99"))
    customer = CustomerFactory()
    created = subscribe(api, customer, utc(2026, 1, 10))
    changed = post_at(api, f"/api/v1/subscriptions/{created['id']}/change",
                      {"timing": "next_billing_cycle", "plan": {"key": "team"}}, utc(2026, 2, 20)).json()
    successor_id = changed["next"]["id"]

    # when: restored on Feb 25, before the switch on Mar 10
    response = post_at(api, f"/api/v1/subscriptions/{created['id']}/restore", None, utc(2026, 2, 25))

    # then: it runs on indefinitely and the scheduled team subscription is gone
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"
    assert "activeTo" not in response.json() or response.json()["activeTo"] is None
    assert Subscription.objects.get(pk=successor_id).deleted_at is not None
    assert get(api, created["id"], utc(2026, 4, 1))["status"] == "active"


def test_restore_of_an_active_subscription_is_refused(api, tokens):
    publish_plan(api, trial_plan())
    created = subscribe(api, CustomerFactory(), utc(2026, 1, 10))
    response = post_at(api, f"/api/v1/subscriptions/{created['id']}/restore", None, utc(2026, 1, 11))
    assert_problem(response, 403, "")


def test_next_creates_a_draft_from_the_latest_published_version(api, tokens):
    first = publish_plan(api, trial_plan())

    response = api.post("/api/v1/plans/pro/next")

    assert response.status_code == 201, response.content
    draft = response.json()
    assert (draft["key"], draft["version"], draft["status"]) == ("pro", 2, "draft")
    assert [p["key"] for p in draft["phases"]] == [p["key"] for p in first["phases"]]
    # a second draft for the same key is refused
    assert api.post(f"/api/v1/plans/{first['id']}/next").status_code == 400


def test_next_from_an_older_version_is_400(api, tokens):
    first = publish_plan(api, trial_plan())
    publish_plan(api, trial_plan(fee="59"), at=utc(2021, 1, 1))
    assert_problem(api.post(f"/api/v1/plans/{first['id']}/next"), 400, "not the latest published version")
