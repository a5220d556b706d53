"""The back office's shared pieces: money and time display, typed fields, and an operator action page (the grant
void page: confirmation, the service's rejection on the form, the done message)."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone
from playwright.sync_api import expect

from entitlements.models import Grant
from entitlements.services import GrantInput, UsagePeriodInput, entitlement_create, grant_create
from openmeter_site.admin_ui.charts import bar_chart
from openmeter_site.admin_ui.display import money_text, quantity_text, when, when_text
from openmeter_site.admin_ui.forms import DurationField, DurationWidget, KeyValueField
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("amount", "currency", "exact", "shown"),
    [
        ("1234.5", "USD", False, "$1,234.50"),
        ("0.005", "USD", False, "$0.01"),  # half away from zero, as billing rounds
        ("-0.005", "USD", False, "-$0.01"),
        ("1234.5", "JPY", False, "¥1,235"),  # no minor unit
        ("1.2345", "BHD", False, "BHD1.235"),  # three decimals
        ("0.0015", "USD", True, "$0.0015"),  # a unit price keeps its sub-cent digits
        ("2", "USD", True, "$2.00"),
        ("50", "EUR", False, "€50.00"),
    ],
)
def test_money_text_in_the_currency_precision(amount, currency, exact, shown):
    assert money_text(Decimal(amount), currency, exact=exact) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(Decimal("1000000.500"), "1,000,000.5"), (Decimal("1E+3"), "1,000"), (Decimal("0.000001"), "0.000001"),
     (Decimal(0), "0"), (None, "—")],
)
def test_quantity_text_is_grouped_and_never_in_exponent_form(value, shown):
    assert quantity_text(value) == shown


def test_times_in_the_operator_zone_with_utc_on_hover_across_a_dst_change():
    # Europe/Berlin moves from CET (+1) to CEST (+2) at 01:00 UTC on 2026-03-29
    before, after = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC), dt.datetime(2026, 3, 29, 1, 30, 15, tzinfo=dt.UTC)
    with timezone.override(ZoneInfo("Europe/Berlin")):
        assert when_text(before) == "2026-03-29 01:30 CET"
        assert when_text(after) == "2026-03-29 03:30:15 CEST"
        html = str(when(after))
    assert 'datetime="2026-03-29T01:30:15Z"' in html and 'title="2026-03-29 01:30:15 UTC"' in html


def test_duration_field_is_a_number_and_a_unit():
    field = DurationField(required=False)
    assert field.clean(["30", "P{}D"]) == "P30D"
    assert field.clean(["2", "PT{}H"]) == "PT2H"
    assert field.clean(["1", "P{}M"]) == "P1M"
    assert field.clean(["", "P{}D"]) is None
    assert DurationWidget().decompress("P2W") == [2, "P{}W"]
    assert DurationWidget().decompress("PT15M") == [15, "PT{}M"]
    # several units of one kind: in the smallest of them, so that editing keeps the value
    assert DurationWidget().decompress("P1Y6M") == [18, "P{}M"]
    assert DurationWidget().decompress("P1W3D") == [10, "P{}D"]
    assert DurationWidget().decompress("PT1H30M") == [90, "PT{}M"]
    assert DurationWidget().decompress("P1M15D") == [None, "P{}D"]  # a month has no fixed number of days
    with pytest.raises(Exception, match="greater than or equal to 0"):
        field.clean(["-1", "P{}D"])
    with pytest.raises(Exception, match="required"):
        DurationField().clean(["", "P{}D"])


def test_key_value_field_reads_rows_and_refuses_a_key_given_twice():
    field = KeyValueField()
    assert field.clean([("region", "eu"), ("tier", "gold")]) == {"region": "eu", "tier": "gold"}
    assert field.clean([]) == {}
    with pytest.raises(Exception, match="given twice"):
        field.clean([("region", "eu"), ("region", "us")])
    with pytest.raises(Exception, match="has no key"):
        field.clean([("", "orphan")])


def test_bar_chart_draws_one_bar_per_value_scaled_to_the_largest():
    svg = str(bar_chart(["Jan", "Feb", "Mar"], [Decimal(50), Decimal(100), Decimal(0)], title="usage"))
    assert svg.count("<rect") == 3
    # plot height = 220 - 28 - 12 = 180: 100 is the full height, 50 half of it, 0 no height
    assert 'height="180"' in svg and 'height="90"' in svg and 'height="0"' in svg
    assert "<title>Feb: 100</title>" in svg
    assert "no data" in str(bar_chart([], [], title="usage"))


@pytest.fixture
def grant(db):
    customer = CustomerFactory(key="acme", subjects=["acme-api"])
    feature = FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    entitlement = entitlement_create(customer=customer, feature=feature, type="metered",
                                     usage_period=UsagePeriodInput("MONTH", T0), measure_usage_from=T0, at=T0)
    return grant_create(entitlement=entitlement, data=GrantInput(amount=Decimal(100), effective_at=T0), at=T0)


@pytest.mark.django_db
def test_admin_pages_use_the_operator_time_zone_from_the_cookie(admin_client, grant):
    admin_client.cookies["om_tz"] = "America/New_York"
    html = admin_client.get(f"/admin/entitlements/grant/{grant.pk}/change/").content.decode()
    assert "Times in America/New_York" in html
    admin_client.cookies["om_tz"] = "Not/AZone"
    html = admin_client.get(f"/admin/entitlements/grant/{grant.pk}/change/").content.decode()
    assert "Times in UTC" in html


@pytest.mark.django_db
def test_void_grant_page_confirms_then_voids(admin_client, grant):
    url = f"/admin/entitlements/grant/{grant.pk}/do/void/"
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        change = admin_client.get(f"/admin/entitlements/grant/{grant.pk}/change/").content.decode()
        assert url in change  # the button on the grant's page
        page = admin_client.get(url).content.decode()
        assert "cannot be undone" in page
        assert Grant.objects.get(pk=grant.pk).voided_at is None  # looking at the page changes nothing
        response = admin_client.post(url, follow=True)
        assert response.redirect_chain[-1][0] == f"/admin/entitlements/grant/{grant.pk}/change/"
        assert "is void" in response.content.decode()
        assert Grant.objects.get(pk=grant.pk).voided_at == T0 + dt.timedelta(days=3)
        # voided: the button is gone and the page refuses with a message
        assert url not in admin_client.get(f"/admin/entitlements/grant/{grant.pk}/change/").content.decode()
        again = admin_client.post(url, follow=True).content.decode()
    assert "is not possible" in again


@pytest.mark.django_db
def test_void_grant_page_shows_the_service_rejection_on_the_form(admin_client, grant):
    Grant.objects.filter(pk=grant.pk).update(expires_at=T0 + dt.timedelta(days=1))
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        response = admin_client.post(f"/admin/entitlements/grant/{grant.pk}/do/void/")
    assert response.status_code == 200
    assert "has already expired" in response.content.decode()
    assert Grant.objects.get(pk=grant.pk).voided_at is None


@pytest.mark.django_db
def test_action_page_of_an_unknown_record_or_action_is_a_404(admin_client, grant):
    assert admin_client.get("/admin/entitlements/grant/01NOTAGRANT/do/void/").status_code == 404
    assert admin_client.get(f"/admin/entitlements/grant/{grant.pk}/do/explode/").status_code == 404


@pytest.mark.django_db
def test_action_page_needs_the_change_permission(client, django_user_model, grant):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_grant"))
    client.force_login(viewer)
    assert client.post(f"/admin/entitlements/grant/{grant.pk}/do/void/").status_code == 403
    assert Grant.objects.get(pk=grant.pk).voided_at is None


@pytest.mark.django_db
def test_bulk_void_asks_for_confirmation_first(admin_client, grant):
    form = {"action": "void_now", "_selected_action": [grant.pk]}
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        page = admin_client.post("/admin/entitlements/grant/", form)
        assert page.status_code == 200 and "cannot be undone" in page.content.decode()
        assert Grant.objects.get(pk=grant.pk).voided_at is None
        done = admin_client.post("/admin/entitlements/grant/", {**form, "confirmed": "yes"}, follow=True)
    assert "Voided 1 grant." in done.content.decode()
    assert Grant.objects.get(pk=grant.pk).voided_at == T0 + dt.timedelta(days=3)


@pytest.mark.django_db(transaction=True)
def test_operator_voids_a_grant_in_the_browser_seeing_times_in_their_zone(operator_page, grant):
    page = operator_page
    page.goto(f"/admin/entitlements/grant/{grant.pk}/change/")
    # the browser's zone (Europe/Berlin) reaches the server through admin_ui.js' cookie
    expect(page.locator("#om-zone")).to_have_text("Times in Europe/Berlin (UTC on hover)")
    page.click("text=Void grant")
    expect(page.locator(".om-confirm")).to_contain_text("cannot be undone")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("is void")
    assert Grant.objects.get(pk=grant.pk).voided_at is not None


@pytest.mark.django_db
def test_a_deleted_filter_says_yes_or_no_and_filters_on_the_time(admin_client):
    CustomerFactory(key="live", name="Live Ltd")
    CustomerFactory(key="gone", name="Gone GmbH", deleted_at=T0)
    page = admin_client.get("/admin/customers/customer/").content.decode()
    deleted = admin_client.get("/admin/customers/customer/?deleted=yes").content.decode()
    live = admin_client.get("/admin/customers/customer/?deleted=no").content.decode()
    assert "By deleted" in page and "Not empty" not in page
    assert "Gone GmbH" in deleted and "Live Ltd" not in deleted
    assert "Live Ltd" in live and "Gone GmbH" not in live
