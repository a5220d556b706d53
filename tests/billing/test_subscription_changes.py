"""Subscription changes reach billing when they commit, and correct lines already invoiced where OpenMeter does:
gathering lines and mutable drafts change (the draft is recalculated, an emptied draft deleted), an immutable
invoice only gets a warning. Totals computed by hand (31-day January: one day of a 31/month fee is 1)."""

import datetime as dt

import pytest
import time_machine

from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services.subscription_sync import SyncResult, subscription_sync
from tests.billing.helpers import customer, metered_feature, profile
from tests.factories import flat_fee_card, ingest, plan_body, usage_card

pytestmark = pytest.mark.django_db

LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def _publish(api, key: str, *cards: dict) -> None:
    body = plan_body(key, phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": list(cards)}])
    with time_machine.travel(LONG_AGO, tick=False):
        plan = api.post("/api/v1/plans", body, format="json").json()
        assert api.post(f"/api/v1/plans/{plan['id']}/publish").status_code == 200


def _call(api, path: str, body: dict, at: dt.datetime, capture, status: int = 200) -> dict:
    with time_machine.travel(at, tick=False), capture(execute=True):
        r = api.post(path, body, format="json")
    assert r.status_code == status, r.content
    return r.json()


def _subscribe(api, cust, plan: str, capture) -> dict:
    return _call(api, "/api/v1/subscriptions", {"plan": {"key": plan}, "customerKey": cust.key,
                 "billingAnchor": "2026-01-01T00:00:00Z"}, utc(2026, 1, 1), capture, 201)


def _invoice(api, cust, at: dt.datetime, **body) -> list[dict]:
    with time_machine.travel(at, tick=False):
        r = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk, **body}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def _get(api, invoice_id: str) -> dict:
    return api.get(f"/api/v1/billing/invoices/{invoice_id}").json()


def _pending(cust) -> dict[str, str]:
    lines = InvoiceLine.objects.filter(invoice__customer=cust, invoice__status=S.GATHERING, parent__isnull=True,
                                       deleted_at__isnull=True)
    return {f"{line.name}@{line.period_start.date()}": line.price.get("amount") for line in lines}


def test_plan_change_corrects_the_fee_on_the_draft_invoice(api, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    profile(autoAdvance=False)
    _publish(api, "basic", flat_fee_card(amount="31"))
    _publish(api, "pro", flat_fee_card(amount="62"))
    cust = customer()
    old = _subscribe(api, cust, "basic", capture)
    [draft] = _invoice(api, cust, utc(2026, 1, 1, 0, 1))
    assert (draft["status"], draft["totals"]["total"]) == ("draft", "31")

    # when: changed to pro on Jan 11, the draft has not been approved yet
    changed = _call(api, f"/api/v1/subscriptions/{old['id']}/change", {"timing": "immediate", "plan": {"key": "pro"}},
                    utc(2026, 1, 11), capture)

    # then: the draft's fee covers Jan 1-11 only: 31 * 10/31 = 10, recalculated, still waiting for approval
    draft = _get(api, draft["id"])
    assert draft["totals"]["total"] == "10"
    assert draft["statusDetails"]["extendedStatus"] == "draft.manual_approval_needed"
    [line] = draft["lines"]
    assert line["period"] == {"from": "2026-01-01T00:00:00Z", "to": "2026-01-11T00:00:00Z"}
    # and pro's part of January is pending right away: 62 * 21/31 = 42
    assert _pending(cust) == {"base_fee@2026-01-11": "42"}
    # syncing both again changes nothing
    for sub_id in (old["id"], changed["next"]["id"]):
        assert subscription_sync(subscription_id=sub_id, at=utc(2026, 1, 11)) == SyncResult(0, 0, 0)


def test_a_draft_left_without_lines_is_deleted(api, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    profile(autoAdvance=False)
    _publish(api, "basic", flat_fee_card(amount="31"))
    _publish(api, "pro", flat_fee_card(amount="62"))
    cust = customer()
    old = _subscribe(api, cust, "basic", capture)
    with time_machine.travel(utc(2026, 1, 1), tick=False):
        [draft] = _invoice(api, cust, utc(2026, 1, 1))
        # changed at the very start: basic never ran, so its draft has nothing left to bill
        _call(api, f"/api/v1/subscriptions/{old['id']}/change", {"timing": "immediate", "plan": {"key": "pro"}},
              utc(2026, 1, 1), capture)
    assert Invoice.objects.get(pk=draft["id"]).status == S.DELETED
    assert _pending(cust) == {"base_fee@2026-01-01": "62"}


def test_an_issued_invoice_is_not_changed_but_warned(api, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _publish(api, "basic", flat_fee_card(amount="31"))
    cust = customer()
    sub = _subscribe(api, cust, "basic", capture)
    [paid] = _invoice(api, cust, utc(2026, 1, 1, 0, 1))
    assert (paid["status"], paid["totals"]["total"]) == ("paid", "31")

    _call(api, f"/api/v1/subscriptions/{sub['id']}/cancel", {"timing": "immediate"}, utc(2026, 1, 11), capture)
    subscription_sync(subscription_id=sub["id"], at=utc(2026, 1, 12))  # a second sync adds no second warning

    paid = _get(api, paid["id"])
    assert (paid["status"], paid["totals"]["total"]) == ("paid", "31")
    [warning] = paid["validationIssues"]
    assert (warning["severity"], warning["component"], warning["code"]) == (
        "warning", "subscription-sync", "immutable_invoice_handling_not_supported")
    # 31 * 10/31 = 10
    assert "new per unit amount: 10" in warning["message"]
    assert warning["field"] == f"lines/{paid['lines'][0]['id']}"


def test_cancel_shortens_a_progressively_billed_usage_line(api, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    profile(autoAdvance=False)
    metered_feature("tokens")
    _publish(api, "metered", usage_card("tokens", amount="1"))
    cust = customer(subjects=("acme",))
    sub = _subscribe(api, cust, "metered", capture)
    ingest([{"subject": "acme", "type": "tokens", "time": utc(2026, 1, d), "data": {"tokens": n}}
            for d, n in ((5, 10), (15, 20), (25, 40))])
    # usage up to Jan 10 is invoiced early (progressive billing): 10 tokens * 1 = 10
    [first] = _invoice(api, cust, utc(2026, 1, 10), asOf="2026-01-10T00:00:00Z")
    assert first["totals"]["total"] == "10"

    _call(api, f"/api/v1/subscriptions/{sub['id']}/cancel", {"timing": "2026-01-20T00:00:00Z"}, utc(2026, 1, 12),
          capture)

    # the rest of the line now ends with the subscription, the invoiced part is unchanged
    rest = InvoiceLine.objects.get(invoice__status=S.GATHERING, deleted_at__isnull=True)
    assert (rest.period_start, rest.period_end, rest.invoice_at) == (utc(2026, 1, 10), utc(2026, 1, 20), utc(2026, 1, 20))
    assert rest.split_group_end == utc(2026, 1, 20)
    assert _get(api, first["id"])["totals"]["total"] == "10"
    [second] = _invoice(api, cust, utc(2026, 1, 20, 2))
    # Jan 10-20: 20 tokens * 1 = 20 (the Jan 25 event is after the end)
    assert second["totals"]["total"] == "20"
    assert subscription_sync(subscription_id=sub["id"], at=utc(2026, 1, 21)) == SyncResult(0, 0, 0)


def test_edits_and_continued_cancellations_reach_billing_on_commit(api, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    profile(autoAdvance=False)
    _publish(api, "basic", flat_fee_card(amount="31"))
    cust = customer()
    sub = _subscribe(api, cust, "basic", capture)
    # an item added on Jan 15 bills the rest of January: 31 * 17/31 = 17
    edit = {"customizations": [{"op": "add_item", "phaseKey": "main",
                                "rateCard": flat_fee_card(key="support", amount="31")}]}
    with time_machine.travel(utc(2026, 1, 15), tick=False), capture(execute=True):
        assert api.patch(f"/api/v1/subscriptions/{sub['id']}", edit, format="json").status_code == 200
    assert _pending(cust) == {"base_fee@2026-01-01": "31", "support@2026-01-15": "17"}
    # cancelled for Jan 21 (31 * 20/31 = 20 and 31 * 6/31 = 6), then continued: back to 31 and 17
    _call(api, f"/api/v1/subscriptions/{sub['id']}/cancel", {"timing": "2026-01-21T00:00:00Z"}, utc(2026, 1, 16),
          capture)
    assert _pending(cust) == {"base_fee@2026-01-01": "20", "support@2026-01-15": "6"}
    _call(api, f"/api/v1/subscriptions/{sub['id']}/unschedule-cancelation", {}, utc(2026, 1, 17), capture)
    assert _pending(cust) == {"base_fee@2026-01-01": "31", "support@2026-01-15": "17"}
