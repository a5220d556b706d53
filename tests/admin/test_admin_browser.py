"""The back office in a real headless Chromium: log in, create an API key, see it listed, revoke it."""

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from openmeter_site.core.models import ApiKey

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()
        connections.close_all()  # ORM calls made inside Playwright's loop opened a connection of their own


@pytest.mark.django_db(transaction=True)
def test_staff_creates_and_revokes_an_api_key(live_server_url, django_user_model, browser):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "s3cret-pass")
    page = browser.new_page()
    page.goto(f"{live_server_url}/admin/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")
    page.goto(f"{live_server_url}/admin/core/apikey/add/")
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
