"""Usage in the back office, in headless Chromium: a meter's usage query and the event browser."""

import datetime as dt
import os

import pytest
from playwright.sync_api import Page, expect

from tests.factories import CustomerFactory, MeterFactory, ingest

SHOTS = os.environ.get("OM_SCREENSHOTS")  # a folder: save what the operator saw (for a human look)
T = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def shot(page: Page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def usage_data():
    meter = MeterFactory(slug="tokens", name="LLM tokens", event_type="prompt", group_by={"model": "$.model"})
    CustomerFactory(key="acme", name="Acme Inc", subjects=["acme-app"])
    ingest([
        {"subject": "acme-app", "time": T + dt.timedelta(days=d, hours=9), "data": {"tokens": 100 * (d + 1),
                                                                                  "model": "gpt-4o"}}
        for d in range(5)
    ] + [
        {"subject": "acme-app", "time": T + dt.timedelta(days=2, hours=12), "data": {"tokens": 50, "model": "claude"}},
        {"subject": "globex", "time": T + dt.timedelta(days=3, hours=12), "data": {"tokens": 7, "model": "claude"}},
        {"subject": "acme-app", "time": T + dt.timedelta(days=4, hours=13), "data": {"model": "gpt-4o"}},
    ], type="prompt")
    return meter


@pytest.mark.django_db(transaction=True)
def test_billing_person_reads_a_meters_usage_by_day_and_model(operator_page):
    page = operator_page
    meter = usage_data()

    page.goto(f"/admin/metering/meter/{meter.pk}/change/")
    expect(page.locator("#usage")).to_be_visible()
    page.fill("#id_usage-start", "2026-03-01")
    page.fill("#id_usage-end", "2026-03-07")
    page.select_option("#id_usage-window", "DAY")
    page.check("#usage input[value=model]")
    page.click("#usage input[type=submit]")

    table = page.locator(".om-usage-table")
    expect(table.locator("thead")).to_contain_text("model")
    expect(table.locator("tbody tr").first).to_contain_text("2026-03-01 Sun")
    expect(table.locator("tbody tr").first).to_contain_text("100")
    expect(table.locator("tfoot")).to_contain_text("1,557")  # 100+200+300+400+500 + 50 + 7
    expect(page.locator("#usage svg rect.om-bar")).to_have_count(7)  # a bar per day, days without usage too
    shot(page, "meter_usage")


@pytest.mark.django_db(transaction=True)
def test_billing_person_browses_a_customers_events_with_a_meters_values(operator_page):
    page = operator_page
    usage_data()

    page.goto("/admin/metering/event/")
    page.fill("#searchbar", "Acme Inc")
    page.press("#searchbar", "Enter")
    expect(page.locator("#result_list tbody tr")).to_have_count(7)  # globex's event is not Acme's
    page.click("#changelist-filter >> text=LLM tokens (SUM)")
    rows = page.locator("#result_list tbody tr")
    expect(rows.first).to_contain_text("not counted")  # the newest event has no tokens
    expect(rows.nth(1)).to_contain_text("500")
    expect(rows.nth(1)).to_contain_text("model: gpt-4o")
    expect(rows.nth(1)).to_contain_text("Acme Inc")
    shot(page, "event_browser")
