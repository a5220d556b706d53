"""The back office in a real headless Chromium: log in, create an API key, see it listed, revoke it."""

import pytest
from playwright.sync_api import expect

from openmeter_site.core.models import ApiKey


@pytest.mark.django_db(transaction=True)
def test_staff_creates_and_revokes_an_api_key(operator_page):
    page = operator_page
    page.goto("/admin/core/apikey/add/")
    page.fill("#id_name", "billing backend")
    page.click("input[name=_save]")
    # the raw key is shown once, in the success message
    expect(page.locator(".messagelist .warning")).to_contain_text("om_")
    message = page.locator(".messagelist .warning").inner_text()
    assert "om_" in message
    key = ApiKey.objects.get(name="billing backend")
    assert key.prefix in message and key.revoked_at is None
    page.check(f"input[name=_selected_action][value='{key.pk}']")
    page.select_option("select[name=action]", "revoke")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Revoked 1 key(s).")
    key.refresh_from_db()
    assert key.revoked_at is not None
