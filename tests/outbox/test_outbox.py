"""The transactional outbox: events commit or roll back with their change, a failing handler is retried with
backoff and then waits for an admin, two relays never hand one event to a handler twice."""

import collections
import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection, transaction

from openmeter_site.core.models import ApiKey
from openmeter_site.outbox import registry
from openmeter_site.outbox.models import DeliveryState, OutboxDelivery, OutboxEvent
from openmeter_site.outbox.selectors import outbox_backlog
from openmeter_site.outbox.services import MAX_ATTEMPTS, publish, relay_due

TOPIC = "tests.something_happened"
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


class Recorder:
    """A handler that records each call and writes a row (so its writes can be seen to commit or not)."""

    def __init__(self, fail_times: int = 0) -> None:
        self.calls: list[str] = []
        self.fail_times = fail_times
        self.lock = threading.Lock()

    def __call__(self, event: OutboxEvent) -> None:
        with self.lock:
            self.calls.append(event.payload["n"])
            failing = len(self.calls) <= self.fail_times
        ApiKey.issue(f"handled {event.payload['n']}")
        if failing:
            raise RuntimeError("receiver down")


@pytest.fixture
def recorder(monkeypatch):
    def register(**kwargs) -> Recorder:
        handler = Recorder(**kwargs)
        monkeypatch.setitem(registry._handlers, TOPIC, {"tests.record": handler})
        return handler

    return register


@pytest.mark.django_db
def test_the_event_commits_and_rolls_back_with_its_change(recorder):
    recorder()
    # a change that fails after publishing leaves neither the change nor the event
    with pytest.raises(ValueError), transaction.atomic():
        ApiKey.issue("rolled back")
        publish(TOPIC, {"n": "1"})
        raise ValueError("the change failed")
    assert (ApiKey.objects.count(), OutboxEvent.objects.count(), OutboxDelivery.objects.count()) == (0, 0, 0)
    # a change that commits keeps both, with one delivery per registered handler, pending
    with transaction.atomic():
        ApiKey.issue("kept")
        publish(TOPIC, {"n": "2"})
    [event] = OutboxEvent.objects.all()
    assert (event.topic, event.payload) == (TOPIC, {"n": "2"})
    assert list(event.deliveries.values_list("handler", "state")) == [("tests.record", DeliveryState.PENDING)]


@pytest.mark.django_db(transaction=True)
def test_publish_outside_a_transaction_is_refused(recorder):
    recorder()
    with pytest.raises(RuntimeError, match="inside the transaction"):
        publish(TOPIC, {"n": "1"})  # autocommit: the change it reports is already committed


@pytest.mark.django_db
def test_a_topic_nobody_handles_writes_nothing():
    with transaction.atomic():
        publish("tests.nobody_listens", {"n": "1"})
    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db
def test_the_commit_kicks_the_relay(recorder, django_capture_on_commit_callbacks):
    handler = recorder()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        publish(TOPIC, {"n": "1"})
        publish(TOPIC, {"n": "2"})
    assert handler.calls == ["1", "2"]
    assert set(OutboxDelivery.objects.values_list("state", flat=True)) == {DeliveryState.DONE}


@pytest.mark.django_db
def test_a_failing_handler_is_retried_with_backoff_and_its_writes_roll_back(recorder):
    handler = recorder(fail_times=2)
    with time_machine.travel(T0, tick=False), transaction.atomic():
        publish(TOPIC, {"n": "1"})
    # first attempt fails: nothing it wrote is kept, the next attempt is due 10 s later
    with time_machine.travel(T0, tick=False):
        assert relay_due() == 1
        assert relay_due() == 0
    delivery = OutboxDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("pending", 1, T0 + dt.timedelta(seconds=10))
    assert "RuntimeError: receiver down" in delivery.last_error
    assert ApiKey.objects.count() == 0
    # second attempt 10 s later fails again: 20 s more
    with time_machine.travel(T0 + dt.timedelta(seconds=10), tick=False):
        assert relay_due() == 1
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.next_attempt_at) == (2, T0 + dt.timedelta(seconds=30))
    # third attempt succeeds: done, with the handler's write
    with time_machine.travel(T0 + dt.timedelta(seconds=29), tick=False):
        assert relay_due() == 0
    with time_machine.travel(T0 + dt.timedelta(seconds=30), tick=False):
        assert relay_due() == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.delivered_at) == ("done", 3, T0 + dt.timedelta(seconds=30))
    assert handler.calls == ["1", "1", "1"]
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["handled 1"]


@pytest.mark.django_db
def test_a_handler_failing_every_attempt_waits_as_failed_until_an_admin_retries(recorder, admin_client):
    recorder(fail_times=MAX_ATTEMPTS)
    with time_machine.travel(T0, tick=False), transaction.atomic():
        publish(TOPIC, {"n": "1"})
    delivery = OutboxDelivery.objects.get()
    at = T0
    for _ in range(MAX_ATTEMPTS):
        with time_machine.travel(at, tick=False):
            assert relay_due() == 1
        delivery.refresh_from_db()
        at = delivery.next_attempt_at or at
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("failed", MAX_ATTEMPTS, None)
    # 10 s doubling, at most an hour: 10+20+...+2560 = 5110 s, then 3600 s each up to the 11th wait
    assert at - T0 == dt.timedelta(seconds=5110 + 2 * 3600)
    with time_machine.travel(at + dt.timedelta(days=1), tick=False):
        assert relay_due() == 0  # failed deliveries are not retried by themselves
        # the admin shows it with its error, and retrying delivers it (the handler now succeeds)
        page = admin_client.get("/admin/outbox/outboxdelivery/?state__exact=failed").content.decode()
        assert "tests.record" in page and "receiver down" in page
        response = admin_client.post("/admin/outbox/outboxdelivery/", {
            "action": "retry_now", "_selected_action": [delivery.pk]})
        assert response.status_code == 302
        # in eager mode the retry's kick relayed it on commit; the test transaction never commits, so relay here
        assert relay_due() == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("done", 1)
    event_page = admin_client.get(f"/admin/outbox/outboxevent/{delivery.event_id}/change/")
    assert event_page.status_code == 200


@pytest.mark.django_db
def test_backlog_counts_undelivered_and_ages_the_oldest(recorder):
    recorder(fail_times=1)
    with time_machine.travel(T0, tick=False), transaction.atomic():
        publish(TOPIC, {"n": "1"})
    with time_machine.travel(T0 + dt.timedelta(seconds=30), tick=False), transaction.atomic():
        publish(TOPIC, {"n": "2"})
    with time_machine.travel(T0 + dt.timedelta(seconds=45), tick=False):
        assert outbox_backlog() == (2, 45.0)
        assert relay_due() == 2  # the first fails once, the second is delivered
        assert outbox_backlog() == (1, 45.0)
    with time_machine.travel(T0 + dt.timedelta(minutes=5), tick=False):
        assert relay_due() == 1
        assert outbox_backlog() == (0, 0.0)


def _pending_events(count: int, handlers: list[str]) -> None:
    """Committed events as `publish` leaves them, without its kick (which in eager mode would relay them at once)."""
    events = OutboxEvent.objects.bulk_create([OutboxEvent(topic=TOPIC, payload={"n": str(n)}) for n in range(count)])
    OutboxDelivery.objects.bulk_create([OutboxDelivery(event=e, handler=h) for e in events for h in handlers])


def _relay_in_thread(results: list[int], **kwargs) -> threading.Thread:
    def run() -> None:
        try:
            results.append(relay_due(**kwargs))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_second_relay_skips_the_delivery_the_first_is_handling(monkeypatch):
    # given a handler that holds its delivery until a second relay has run
    calls: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def slow_handler(event: OutboxEvent) -> None:
        calls.append(event.pk)
        entered.set()
        assert release.wait(timeout=30)

    monkeypatch.setitem(registry._handlers, TOPIC, {"tests.slow": slow_handler})
    _pending_events(1, ["tests.slow"])
    first: list[int] = []
    thread = _relay_in_thread(first)
    assert entered.wait(timeout=30)
    # when a second relay runs while the first holds the delivery
    second = relay_due()
    release.set()
    thread.join(timeout=30)
    # then only the first handed it over, once
    assert (first, second, len(calls)) == ([1], 0, 1)
    assert OutboxDelivery.objects.get().state == DeliveryState.DONE
    assert relay_due() == 0


@pytest.mark.django_db(transaction=True)
def test_two_racing_relays_hand_each_event_to_a_handler_once(monkeypatch):
    seen: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def count(event: OutboxEvent) -> None:
        with lock:
            seen[event.payload["n"]] += 1

    monkeypatch.setitem(registry._handlers, TOPIC, {"tests.count": count, "tests.count_too": count})
    _pending_events(40, ["tests.count", "tests.count_too"])
    results: list[int] = []
    threads = [_relay_in_thread(results) for _ in range(2)]
    for thread in threads:
        thread.join(timeout=60)
    # 40 events x 2 handlers, each delivered exactly once between the two relays
    assert sum(results) == 80
    assert seen == {str(n): 2 for n in range(40)}
    assert set(OutboxDelivery.objects.values_list("state", flat=True)) == {DeliveryState.DONE}
