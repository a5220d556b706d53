import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.models import NotificationEvent
from notifications.services.channels import channel_create
from notifications.services.evaluation import (
    EntitlementSnapshot,
    emit_entitlement_reset,
    evaluate_balance_thresholds,
    threshold_crossed,
)
from notifications.services.rules import Threshold, rule_create
from tests.factories import FeatureFactory

PERIOD = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)


def snapshot(*, usage, granted=Decimal(100), feature_id="01JFFFFFFFFFFFFFFFFFFFFFFF", period=PERIOD) -> EntitlementSnapshot:
    usage, granted = Decimal(usage), Decimal(granted)
    balance = max(granted - usage, Decimal(0))
    return EntitlementSnapshot(
        entitlement_id="01JEEEEEEEEEEEEEEEEEEEEEEE",
        feature_id=feature_id,
        feature_key="tokens",
        subject_key="customer-a",
        usage_period_start=period,
        balance=balance,
        usage=usage,
        total_available_grant_amount=granted,
        data={
            "entitlement": {"id": "01JEEEEEEEEEEEEEEEEEEEEEEE", "type": "metered", "featureKey": "tokens"},
            "feature": {"id": feature_id, "key": "tokens", "name": "Tokens"},
            "subject": {"key": "customer-a"},
            "customer": {"id": "01JCCCCCCCCCCCCCCCCCCCCCCC", "name": "A"},
            "value": {"hasAccess": balance > 0, "balance": balance, "usage": usage,
                      "overage": max(usage - granted, Decimal(0)), "totalAvailableGrantAmount": granted},
        },
    )


@pytest.mark.parametrize(
    ("threshold", "usage", "crossed"),
    [
        (Threshold("usage_value", Decimal(50)), 49, False),
        (Threshold("usage_value", Decimal(50)), 50, True),
        (Threshold("NUMBER", Decimal(50)), 50, True),
        (Threshold("usage_percentage", Decimal(80)), "79.99", False),  # 79.99 / 100 granted
        (Threshold("usage_percentage", Decimal(80)), 80, True),
        (Threshold("PERCENT", Decimal("80.5")), "80.5", True),
        (Threshold("balance_value", Decimal(10)), 89, False),  # balance 11
        (Threshold("balance_value", Decimal(10)), 90, True),  # balance 10
        (Threshold("balance_value", Decimal(0)), 150, True),  # balance floors at 0
    ],
)
def test_threshold_crossed(threshold, usage, crossed):
    assert threshold_crossed(threshold, snapshot(usage=usage)) is crossed


def test_percentage_threshold_needs_a_grant():
    assert threshold_crossed(Threshold("usage_percentage", Decimal(1)), snapshot(usage=5, granted=0)) is False


@given(
    usage=st.decimals(min_value=0, max_value=10**6, places=4),
    granted=st.decimals(min_value=1, max_value=10**6, places=4),
    percent=st.decimals(min_value=1, max_value=200, places=2),
)
def test_percentage_is_exact(usage, granted, percent):
    # crossed exactly when usage/granted*100 ≥ percent, computed in rationals
    from fractions import Fraction

    expected = Fraction(usage) / Fraction(granted) * 100 >= Fraction(percent)
    assert threshold_crossed(Threshold("usage_percentage", percent), snapshot(usage=usage, granted=granted)) is expected


@pytest.fixture
def channel(db, receiver):
    return channel_create(name="hook", url=receiver.url)


def threshold_rule(channel, *values, **kwargs):
    thresholds = [Threshold(t, Decimal(v)) for t, v in values]
    return rule_create(type="entitlements.balance.threshold", name="t", channel_ids=[channel.id], thresholds=thresholds,
                       **kwargs)


@pytest.mark.django_db
def test_one_big_batch_fires_each_crossed_threshold_once(channel, receiver, django_capture_on_commit_callbacks):
    # given thresholds at 50%, 80%, 100% of a 100-unit grant
    threshold_rule(channel, ("usage_percentage", 50), ("usage_percentage", 80), ("usage_percentage", 100))
    # when one batch takes usage from 0 to 85: 50% and 80% are crossed, 100% is not
    with django_capture_on_commit_callbacks(execute=True):
        events = evaluate_balance_thresholds(snapshot=snapshot(usage=85))
    # then
    assert len(events) == 2
    sent = sorted(r.json()["data"]["threshold"]["value"] for r in receiver.requests)
    assert sent == [50, 80]
    assert all(receiver.verify(r, channel.signing_secret) for r in receiver.requests)
    # and later events in the same period fire only the newly crossed 100%
    with django_capture_on_commit_callbacks(execute=True):
        assert evaluate_balance_thresholds(snapshot=snapshot(usage=90)) == []
        [late] = evaluate_balance_thresholds(snapshot=snapshot(usage=120))
    assert late.dedup_key.endswith(":usage_percentage:100")
    assert len(receiver.requests) == 3


@pytest.mark.django_db
def test_thresholds_fire_again_in_the_next_usage_period(channel):
    threshold_rule(channel, ("usage_value", 10))
    assert len(evaluate_balance_thresholds(snapshot=snapshot(usage=10))) == 1
    assert evaluate_balance_thresholds(snapshot=snapshot(usage=11)) == []
    next_period = PERIOD + dt.timedelta(days=30)
    assert len(evaluate_balance_thresholds(snapshot=snapshot(usage=12, period=next_period))) == 1


@pytest.mark.django_db
def test_threshold_payload(channel, receiver, django_capture_on_commit_callbacks):
    threshold_rule(channel, ("balance_value", "12.5"))
    with django_capture_on_commit_callbacks(execute=True):
        [event] = evaluate_balance_thresholds(snapshot=snapshot(usage="87.5"))
    [request] = receiver.requests
    body = request.json()
    assert body["id"] == event.id
    assert body["type"] == "entitlements.balance.threshold"
    assert body["data"]["threshold"] == {"type": "balance_value", "value": 12.5}
    assert body["data"]["value"]["balance"] == 12.5  # 100 granted - 87.5 used
    assert set(body["data"]) == {"entitlement", "feature", "subject", "customer", "value", "threshold"}
    assert (event.subject_key, event.feature_key, event.entitlement_id) == ("customer-a", "tokens",
                                                                            "01JEEEEEEEEEEEEEEEEEEEEEEE")


@pytest.mark.django_db
def test_feature_filter_disabled_rule_and_disabled_channel(channel, receiver):
    tokens = FeatureFactory(key="tokens")
    other = FeatureFactory(key="other")
    threshold_rule(channel, ("usage_value", 1), feature_refs=[other.key])
    assert evaluate_balance_thresholds(snapshot=snapshot(usage=5, feature_id=tokens.id)) == []
    threshold_rule(channel, ("usage_value", 1), disabled=True)
    assert evaluate_balance_thresholds(snapshot=snapshot(usage=5, feature_id=tokens.id)) == []
    off = channel_create(name="off", url=receiver.url, disabled=True)
    threshold_rule(off, ("usage_value", 1), feature_refs=[tokens.id])
    assert evaluate_balance_thresholds(snapshot=snapshot(usage=5, feature_id=tokens.id)) == []
    threshold_rule(channel, ("usage_value", 1), feature_refs=[tokens.id])
    [event] = evaluate_balance_thresholds(snapshot=snapshot(usage=5, feature_id=tokens.id))
    assert event.deliveries.count() == 1


@pytest.mark.django_db
def test_reset_fires_once_per_new_period_with_the_payload(channel, receiver, django_capture_on_commit_callbacks):
    rule_create(type="entitlements.reset", name="resets", channel_ids=[channel.id])
    with django_capture_on_commit_callbacks(execute=True):
        [event] = emit_entitlement_reset(snapshot=snapshot(usage=0))
        assert emit_entitlement_reset(snapshot=snapshot(usage=0)) == []  # a retried reset task
    [request] = receiver.requests
    assert receiver.verify(request, channel.signing_secret)
    body = request.json()
    assert body["type"] == "entitlements.reset"
    assert set(body["data"]) == {"entitlement", "feature", "subject", "customer", "value"}
    assert NotificationEvent.objects.get() == event
