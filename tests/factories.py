"""Factories shared by every app's tests."""

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

import factory

from catalog.models import Feature
from customers.models import Customer, CustomerSubject
from metering.models import Meter
from metering.postgres.partitions import partition_drop, partitions
from metering.postgres.store import EventRow, insert_events


class MeterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Meter

    slug = factory.Sequence(lambda n: f"meter_{n}")
    name = factory.LazyAttribute(lambda o: o.slug)
    aggregation = "SUM"
    event_type = "request"
    value_property = "$.tokens"
    group_by = factory.LazyFunction(lambda: {"model": "$.model"})


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        skip_postgeneration_save = True  # the subjects hook creates rows of its own; the customer is saved already

    key = factory.Sequence(lambda n: f"customer-{n}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    currency = "USD"

    @factory.post_generation
    def subjects(self, create: bool, extracted: Iterable[str] | None, **kwargs: Any) -> None:
        for key in extracted or ():
            CustomerSubject.objects.create(customer=self, subject_key=key)


class FeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feature

    key = factory.Sequence(lambda n: f"feature_{n}")
    name = factory.LazyAttribute(lambda o: o.key)
    meter = factory.SubFactory(MeterFactory)
    meter_slug = factory.LazyAttribute(lambda o: o.meter.slug if o.meter else None)


_event_counter = iter(range(10**9))


def ingest(
    events: Iterable[Mapping[str, Any]], *, type: str = "request", source: str = "tests"
) -> int:
    """Store events through the real event store. Each mapping: subject, time, data, optional id/type/source."""
    rows = [
        EventRow(
            id=str(e.get("id") or f"evt-{next(_event_counter)}"),
            source=str(e.get("source", source)),
            type=str(e.get("type", type)),
            subject=str(e["subject"]),
            time=e["time"] if isinstance(e["time"], dt.datetime) else dt.datetime.fromisoformat(e["time"]),
            data_json=json.dumps(e["data"]) if e.get("data") is not None else None,
        )
        for e in events
    ]
    return insert_events(rows)


def event_partitions_drop_before(month: dt.date) -> None:
    """Start a test from no event partition reaching before `month` (partitions of data that earlier tests
    committed included; the test's transaction rolls the drops back at its end)."""
    start = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
    for span in partitions():
        if span.start_time is None or span.start_time < start:
            assert partition_drop(span, unless=lambda: False)


# --- plans, add-ons and subscriptions: request bodies in the spec's wire shape -------------------------------


def flat_fee_card(key: str = "base_fee", amount: str = "10", cadence: str | None = "P1M", **extra: Any) -> dict:
    return {
        "type": "flat_fee",
        "key": key,
        "name": key,
        "billingCadence": cadence,
        "price": {"type": "flat", "amount": amount, "paymentTerm": "in_advance"},
        **extra,
    }


def usage_card(feature_key: str, key: str | None = None, amount: str = "0.1", cadence: str = "P1M", **extra: Any) -> dict:
    return {
        "type": "usage_based",
        "key": key or feature_key,
        "name": key or feature_key,
        "featureKey": feature_key,
        "billingCadence": cadence,
        "price": {"type": "unit", "amount": amount},
        **extra,
    }


def plan_body(key: str = "pro", phases: list[dict] | None = None, **extra: Any) -> dict:
    return {
        "key": key,
        "name": key.title(),
        "currency": "USD",
        "billingCadence": "P1M",
        "phases": phases or [{"key": "default", "name": "Default", "duration": None, "rateCards": [flat_fee_card()]}],
        **extra,
    }


def addon_body(
    key: str = "extra_seats", instance_type: str = "multiple", cards: list[dict] | None = None, **extra: Any
) -> dict:
    return {
        "key": key,
        "name": key.title(),
        "currency": "USD",
        "instanceType": instance_type,
        "rateCards": cards or [flat_fee_card(key="seat_fee", amount="5")],
        **extra,
    }
