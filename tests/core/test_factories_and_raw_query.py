import datetime as dt
from decimal import Decimal

import pytest

from metering.postgres.query import meter_usage, meter_usage_by_customer
from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_meter_usage_sums_value_property_over_half_open_range_and_dedups():
    meter = MeterFactory(aggregation="SUM", value_property="$.tokens")
    ingest(
        [
            {"id": "a", "subject": "s1", "time": T0, "data": {"tokens": 10, "model": "x"}},
            {"id": "a", "subject": "s1", "time": T0, "data": {"tokens": 10, "model": "x"}},  # duplicate
            {"id": "b", "subject": "s1", "time": T0 + dt.timedelta(minutes=5), "data": {"tokens": "2.5"}},
            {"id": "c", "subject": "s2", "time": T0, "data": {"tokens": 7}},
            {"id": "d", "subject": "s1", "time": T0 + dt.timedelta(hours=1), "data": {"tokens": 100}},  # at `end`
            {"id": "e", "subject": "s1", "time": T0, "data": {"tokens": "abc"}},  # not a number: skipped
        ]
    )
    end = T0 + dt.timedelta(hours=1)
    assert meter_usage(meter=meter, subjects=["s1"], start=T0, end=end) == Decimal("12.5")
    assert meter_usage(meter=meter, subjects=["s1", "s2"], start=T0, end=end) == Decimal("19.5")
    assert meter_usage(meter=meter, subjects=["s1"], start=T0, end=end, group_filters={"model": ["x"]}) == 10
    by_customer = meter_usage_by_customer(
        meter=meter, subject_customers={"s1": "C1", "s2": "C2"}, start=T0, end=end + dt.timedelta(minutes=1)
    )
    assert by_customer == {"C1": Decimal("112.5"), "C2": Decimal("7")}
