"""Entitlement actions from the back office (grant credit, void a grant, reset usage, override): each calls the
entitlements service, its rejection is shown on the form, and nothing changes then."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from entitlements.models import Entitlement, Grant, UsageReset
from tests.backoffice.conftest import T0

pytestmark = pytest.mark.django_db

NOW = T0 + dt.timedelta(days=3, hours=10)  # Mar 4, 10:00 UTC
GRANT = {"amount": "", "priority": "1", "effective_at": "", "expires_after_0": "", "expires_after_1": "P{}D",
         "min_rollover_amount": "", "max_rollover_amount": "", "renews_every_0": "", "renews_every_1": "P{}M"}


def post(admin_client, url: str, data: dict | None = None, at: dt.datetime = NOW):
    with time_machine.travel(at, tick=False):
        return admin_client.post(url, data or {}, follow=True)


def errors(response) -> str:
    assert response.status_code == 200 and response.redirect_chain == []
    return " ".join(str(e) for errs in response.context["form"].errors.values() for e in errs)


def test_grant_credit_with_expiry_rollover_and_renewal(admin_client, story):
    url = f"/admin/entitlements/entitlement/{story.entitlement.pk}/do/grant/"
    response = post(admin_client, url, {**GRANT, "amount": "250", "priority": "5", "expires_after_0": "30",
                                        "min_rollover_amount": "10", "max_rollover_amount": "50",
                                        "renews_every_0": "1"})
    # 100 + 250 granted, 42 used → 308
    assert "ACME Inc.: granted 250 tokens; the balance is now 308." in response.content.decode()
    grant = Grant.objects.get(amount=250)
    assert (grant.priority, grant.expiration_duration, grant.expiration_count) == (5, "DAY", 30)
    assert grant.effective_at == NOW and grant.expires_at == NOW + dt.timedelta(days=30)
    assert (grant.min_rollover_amount, grant.max_rollover_amount) == (Decimal(10), Decimal(50))
    assert grant.recurrence_interval == "P1M"


@pytest.mark.parametrize(("fields", "message"), [
    ({"amount": "-5"}, "greater than or equal to 0"),
    ({"amount": "5", "priority": "0"}, "greater than or equal to 1"),
    ({"amount": "5", "expires_after_0": "30", "expires_after_1": "PT{}M"}, "hours, days, weeks, months or years"),
    ({"amount": "5", "min_rollover_amount": "20", "max_rollover_amount": "10"}, "must not exceed maxRolloverAmount"),
], ids=["negative-amount", "priority-0", "expires-in-minutes", "min-rollover-above-max"])
def test_grant_credit_rejections_are_shown_and_nothing_is_granted(admin_client, story, fields, message):
    response = post(admin_client, f"/admin/entitlements/entitlement/{story.entitlement.pk}/do/grant/",
                    {**GRANT, **fields})
    assert message in errors(response)
    assert Grant.objects.count() == 1


def test_void_a_grant_from_the_hub_returns_to_the_hub(admin_client, story):
    hub = f"/admin/customers/customer/{story.customer.pk}/change/"
    response = post(admin_client, f"/admin/entitlements/grant/{story.grant.pk}/do/void/?next={hub}")
    assert response.redirect_chain[-1][0] == hub
    assert Grant.objects.get().voided_at == NOW.replace(second=0)


def test_reset_usage(admin_client, story):
    url = f"/admin/entitlements/entitlement/{story.entitlement.pk}/do/reset/"
    response = post(admin_client, url, {"effective_at": "", "retain_anchor": "on"})
    assert "Usage of tokens for ACME Inc. starts again from 2026-03-04 10:00 UTC." in response.content.decode()
    reset = UsageReset.objects.get()
    assert (reset.reset_at, reset.retain_anchor, reset.automatic) == (NOW, True, False)


def test_a_reset_in_the_future_is_refused(admin_client, story):
    response = post(admin_client, f"/admin/entitlements/entitlement/{story.entitlement.pk}/do/reset/",
                    {"effective_at": "2026-03-05T00:00"})
    assert "a reset cannot be in the future" in errors(response)
    assert not UsageReset.objects.exists()


def test_override_replaces_the_entitlement(admin_client, story):
    url = f"/admin/entitlements/entitlement/{story.entitlement.pk}/do/override/"
    with time_machine.travel(NOW, tick=False):
        page = admin_client.get(url).content.decode()
    assert 'id="id_is_soft_limit" checked' in page and 'id="id_usage_period_0"' in page  # the current settings to start from
    response = post(admin_client, url, {"type": "metered", "usage_period_0": "1", "usage_period_1": "P{}W",
                                        "usage_period_anchor": "", "issue_after_reset": "1000"})
    assert "is replaced by a new metered entitlement from 2026-03-04 10:00 UTC" in response.content.decode()
    old = Entitlement.objects.get(pk=story.entitlement.pk)
    new = Entitlement.objects.get(deleted_at__isnull=True)
    assert old.deleted_at is not None and old.active_to == NOW
    assert (new.usage_period_interval, new.is_soft_limit, new.issue_after_reset) == ("P1W", False, Decimal(1000))


def test_override_to_static_without_config_is_refused_and_nothing_changes(admin_client, story):
    response = post(admin_client, f"/admin/entitlements/entitlement/{story.entitlement.pk}/do/override/",
                    {"type": "static", "usage_period_0": "", "usage_period_1": "P{}M", "config": ""})
    assert "config: required for a static entitlement" in errors(response)
    assert Entitlement.objects.get().deleted_at is None
