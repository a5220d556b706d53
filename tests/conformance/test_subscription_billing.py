"""Subscriptions into invoice lines as upstream's subscription sync builds them
(billing/worker/subscriptionsync/service/targetstate: phaseiterator.go, targetstateitem.go; subscription/
subscriptionspec.go GetAlignedBillingPeriodAt, GetFullServicePeriodAt): service periods cut at the billing cadence
from the billing anchor, flat fees pro-rated by service / full service period (rounded to the currency), in advance
invoiced at the billing period's start, anything else at the later of the service and billing period ends.
Subscriptions are driven through the official client; the sync runs when the change commits."""

import datetime as dt
from contextlib import contextmanager
from decimal import Decimal

import pytest

from billing.services.subscription_sync import subscriptions_sync_all
from tests.conformance.conftest import at, customer, iso, metered_feature, usage, utc
from tests.factories import flat_fee_card, plan_body, usage_card

pytestmark = pytest.mark.django_db

JAN, FEB, MAR = utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 3, 1)


@pytest.fixture
def when(django_capture_on_commit_callbacks):
    """`with when(t):` the clock stands at `t` and what commits runs its on-commit work (the billing sync)."""
    @contextmanager
    def moment(t: dt.datetime):
        with at(t), django_capture_on_commit_callbacks(execute=True):
            yield
    return moment


def _plan(om, key: str, *phases: dict, **extra) -> None:
    with at(utc(2025, 1, 1)):
        plan = om.plans.create(plan_body(key, phases=list(phases), **extra))
        om.plans.publish(plan.id)


def _phase(key: str, *cards: dict, duration: str | None = None) -> dict:
    return {"key": key, "name": key.title(), "duration": duration, "rateCards": list(cards)}


def _pending(om, cust) -> dict[str, tuple]:
    """Gathering lines: name@period start → (amount or quantity, period end, invoiceAt)."""
    [gathering] = om.invoices.list(statuses=["gathering"], customers=[cust.id], expand=["lines"])["items"]
    out = {}
    for line in gathering.get("lines") or ():
        value = Decimal(line["price"]["amount"]) if line["price"]["type"] == "flat" else Decimal(line.get("quantity", 0))
        out[f"{line['name']}@{line['period']['from']}"] = (value, _time(line["period"]["to"]), _time(line["invoiceAt"]))
    return out


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def test_a_trial_phase_then_a_monthly_fee_pro_rates_the_first_partial_period(om, when):
    # 10-day trial from Jan 1 (anchor Jan 1), then a 31/month fee in advance: the main phase starts Jan 11, its
    # first service period is [Jan 11, Feb 1) of the full period [Jan 1, Feb 1): 31 x 21 / 31 = 21, invoiced at
    # the billing period's start, which is the phase's start (Jan 11)
    _plan(om, "trial", _phase("trial", flat_fee_card(amount="0"), duration="P10D"),
          _phase("main", flat_fee_card(amount="31")))
    cust = customer(om, "trialist")
    with when(JAN):
        om.subscriptions.create({"plan": {"key": "trial"}, "customerId": cust.id})
    with when(utc(2026, 1, 11)):  # the clock reaches the main phase; the periodic sync picks it up
        subscriptions_sync_all()
    assert _pending(om, cust) == {"base_fee@2026-01-11T00:00:00Z": (21, FEB, utc(2026, 1, 11))}


def test_a_one_time_fee_in_advance_is_an_instant_at_the_item_start(om, when):
    # no billing cadence: the full service period is [activeFrom, phase end or activeFrom]; in an open-ended phase
    # that is the instant of the start, invoiced at the start of the billing period holding it
    _plan(om, "setup", _phase("main", flat_fee_card("setup_fee", amount="100", cadence=None),
                              flat_fee_card(amount="10")))
    cust = customer(om, "setup_buyer")
    start = utc(2026, 1, 5, 9, 30)
    with when(start):
        om.subscriptions.create({"plan": {"key": "setup"}, "customerId": cust.id})
    pending = _pending(om, cust)
    assert pending["setup_fee@2026-01-05T09:30:00Z"] == (100, start, start)
    assert pending["base_fee@2026-01-05T09:30:00Z"] == (10, utc(2026, 2, 5, 9, 30), start)


def test_a_one_time_fee_in_arrears_bills_at_the_end_of_its_phase(om, when):
    # in arrears, billed once at the end of the phase: not billable while the phase is open-ended; in a P2M phase
    # its service period is the whole phase [Jan 1, Mar 1) and it is invoiced at the phase's end
    onboarding = flat_fee_card("onboarding", amount="40", cadence=None)
    onboarding["price"]["paymentTerm"] = "in_arrears"
    _plan(om, "onboard", _phase("intro", onboarding, flat_fee_card(amount="10"), duration="P2M"),
          _phase("main", flat_fee_card(amount="20")))
    cust = customer(om, "onboarded")
    with when(JAN):
        om.subscriptions.create({"plan": {"key": "onboard"}, "customerId": cust.id})
    assert _pending(om, cust)["onboarding@2026-01-01T00:00:00Z"] == (40, MAR, MAR)

    _plan(om, "open_onboard", _phase("main", onboarding, flat_fee_card(amount="10")))
    other = customer(om, "open_onboarded")
    with when(JAN):
        om.subscriptions.create({"plan": {"key": "open_onboard"}, "customerId": other.id})
    assert "onboarding@2026-01-01T00:00:00Z" not in _pending(om, other)


def test_cancel_at_the_end_of_the_billing_period_bills_full_periods(om, when):
    in_arrears = flat_fee_card("support", amount="30")
    in_arrears["price"]["paymentTerm"] = "in_arrears"
    _plan(om, "eop", _phase("main", flat_fee_card(amount="31"), in_arrears))
    cust = customer(om, "eop_canceller")
    with when(JAN):
        sub = om.subscriptions.create({"plan": {"key": "eop"}, "customerId": cust.id})
    with when(utc(2026, 1, 20)):
        canceled = om.subscriptions.cancel(sub.id, {"timing": "next_billing_cycle"})
    assert canceled.active_to == FEB
    # the January period is whole: nothing pro-rated; the fee in arrears is invoiced at the period end
    assert _pending(om, cust) == {"base_fee@2026-01-01T00:00:00Z": (31, FEB, JAN),
                                  "support@2026-01-01T00:00:00Z": (30, FEB, FEB)}


def test_cancel_immediately_pro_rates_fees_in_advance_and_in_arrears(om, when):
    in_arrears = flat_fee_card("support", amount="30")
    in_arrears["price"]["paymentTerm"] = "in_arrears"
    _plan(om, "now", _phase("main", flat_fee_card(amount="31"), in_arrears))
    cust = customer(om, "now_canceller")
    with when(JAN):
        sub = om.subscriptions.create({"plan": {"key": "now"}, "customerId": cust.id})
    with when(utc(2026, 1, 11)):
        om.subscriptions.cancel(sub.id, {"timing": "immediate"})
    # 10 of 31 days: 31 x 10 / 31 = 10 and 30 x 10 / 31 = 9.677… -> 9.68; the billing period ends with the
    # subscription, so the fee in arrears is invoiced on Jan 11
    end = utc(2026, 1, 11)
    assert _pending(om, cust) == {"base_fee@2026-01-01T00:00:00Z": (10, end, JAN),
                                  "support@2026-01-01T00:00:00Z": (Decimal("9.68"), end, end)}


def test_plan_change_keeps_the_billing_anchor_and_pro_rates_both_sides(om, when):
    metered_feature(om, "calls")
    _plan(om, "basic", _phase("main", flat_fee_card(amount="30"), usage_card("calls", amount="1")))
    _plan(om, "pro", _phase("main", flat_fee_card(amount="62"), usage_card("calls", amount="0.5")))
    cust = customer(om, "changer")
    with when(utc(2026, 1, 1, 12)):
        sub = om.subscriptions.create({"plan": {"key": "basic"}, "customerId": cust.id})
    usage(om, cust.key, "calls", utc(2026, 1, 5), 10)
    usage(om, cust.key, "calls", utc(2026, 1, 20), 10)
    with when(utc(2026, 1, 16, 12)):
        change = om.subscriptions.change(sub.id, {"timing": "immediate", "plan": {"key": "pro"}})
    # the new subscription keeps the anchor Jan 1 12:00: its first period [Jan 16 12:00, Feb 1 12:00) is 16 of 31
    # days: 62 x 16 / 31 = 32; basic ran 15 of 31 days: 30 x 15 / 31 = 14.516… -> 14.52
    assert change.next.billing_anchor == utc(2026, 1, 1, 12)
    pending = _pending(om, cust)
    assert pending["base_fee@2026-01-01T12:00:00Z"] == (Decimal("14.52"), utc(2026, 1, 16, 12), utc(2026, 1, 1, 12))
    assert pending["base_fee@2026-01-16T12:00:00Z"] == (32, utc(2026, 2, 1, 12), utc(2026, 1, 16, 12))
    # usage is split at the change: 10 calls on basic, 10 on pro, each invoiced when its period ends
    assert pending["calls@2026-01-01T12:00:00Z"] == (10, utc(2026, 1, 16, 12), utc(2026, 1, 16, 12))
    assert pending["calls@2026-01-16T12:00:00Z"] == (10, utc(2026, 2, 1, 12), utc(2026, 2, 1, 12))


def test_bill_full_period_does_not_pro_rate_a_period_cut_by_the_end(om, when):
    from tests.conformance.conftest import default_workflow

    default_workflow(om, subscriptionEndProrationMode="bill_full_period")
    _plan(om, "full", _phase("main", flat_fee_card(amount="31")))
    cust = customer(om, "full_biller")
    with when(JAN):
        sub = om.subscriptions.create({"plan": {"key": "full"}, "customerId": cust.id})
    with when(utc(2026, 1, 11)):
        om.subscriptions.cancel(sub.id, {"timing": "immediate"})
    assert _pending(om, cust) == {"base_fee@2026-01-01T00:00:00Z": (31, utc(2026, 1, 11), JAN)}


def test_pro_rating_disabled_bills_partial_periods_in_full(om, when):
    _plan(om, "noprorate", _phase("main", flat_fee_card(amount="31")),
          proRatingConfig={"enabled": False, "mode": "prorate_prices"})
    cust = customer(om, "no_prorate")
    with when(utc(2026, 1, 11)):
        om.subscriptions.create({"plan": {"key": "noprorate"}, "customerId": cust.id,
                                 "billingAnchor": iso(JAN)})
    assert _pending(om, cust) == {"base_fee@2026-01-11T00:00:00Z": (31, FEB, utc(2026, 1, 11))}
