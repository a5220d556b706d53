import datetime as dt

import pytest
import time_machine

from notifications import delivery as transport
from notifications.models import DeliveryState, NotificationChannel, NotificationDelivery, NotificationEvent
from notifications.services.channels import channel_create
from notifications.services.delivery import delivery_attempt
from notifications.services.evaluation import emit_invoice_event
from notifications.services.rules import rule_create
from notifications.tasks import dispatch_due_task
from openmeter_site.core.errors import InvalidInput

pytestmark = pytest.mark.django_db

INVOICE = {
    "id": "01JAAAAAAAAAAAAAAAAAAAAAAA",
    "type": "standard",
    "status": "issued",
    "currency": "USD",
    "totals": {"total": "12.34"},
    "customer": {"id": "01JBBBBBBBBBBBBBBBBBBBBBBB", "name": "Acme", "usageAttribution": {"subjectKeys": ["acme"]}},
}


def invoice_rule(url: str, *, event_type: str = "invoice.created", **channel_kwargs):
    channel = channel_create(name="hook", url=url, **channel_kwargs)
    rule = rule_create(type=event_type, name="invoices", channel_ids=[channel.id])
    return channel, rule


def emit(django_capture_on_commit_callbacks, event_type: str = "invoice.created", **invoice) -> list[NotificationEvent]:
    with django_capture_on_commit_callbacks(execute=True):
        return emit_invoice_event(invoice_payload={**INVOICE, **invoice}, event_type=event_type)


def test_svix_signature_matches_the_published_test_vector():
    # Svix's own library test vector.
    signature = transport.sign(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_invoice_event_is_posted_signed_with_the_payload(receiver, django_capture_on_commit_callbacks):
    # given
    channel, _rule = invoice_rule(receiver.url, custom_headers={"X-Tenant": "acme"})
    # when
    [event] = emit(django_capture_on_commit_callbacks)
    # then
    [request] = receiver.requests
    assert receiver.verify(request, channel.signing_secret)
    assert request.headers["svix-id"] == event.id
    assert request.headers["x-tenant"] == "acme"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["id"] == event.id
    assert body["type"] == "invoice.created"
    assert body["data"]["totals"]["total"] == "12.34"
    assert body["timestamp"].endswith("Z")
    delivery = NotificationDelivery.objects.get(event=event)
    assert delivery.state == DeliveryState.SUCCESS
    assert [(a.state, a.status_code) for a in delivery.attempts.all()] == [("SUCCESS", 200)]


def test_receiver_failing_twice_gets_the_event_three_times_then_success(receiver, django_capture_on_commit_callbacks):
    # given
    receiver.script = [500, 503]
    channel, _ = invoice_rule(receiver.url)
    # when
    [event] = emit(django_capture_on_commit_callbacks)
    # then
    assert len(receiver.requests) == 3
    assert {r.headers["svix-id"] for r in receiver.requests} == {event.id}
    assert all(receiver.verify(r, channel.signing_secret) for r in receiver.requests)
    assert len({r.body for r in receiver.requests}) == 1
    delivery = NotificationDelivery.objects.get(event=event)
    assert delivery.state == DeliveryState.SUCCESS
    assert delivery.next_attempt_at is None
    assert [(a.state, a.status_code) for a in delivery.attempts.all()] == [
        ("FAILED", 500), ("FAILED", 503), ("SUCCESS", 200),
    ]


def test_delivery_fails_after_the_attempt_budget(receiver, settings, django_capture_on_commit_callbacks):
    settings.OPENMETER_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.script = [500] * 10
    invoice_rule(receiver.url)
    [event] = emit(django_capture_on_commit_callbacks)
    assert len(receiver.requests) == 3
    delivery = NotificationDelivery.objects.get(event=event)
    assert delivery.state == DeliveryState.FAILED
    assert "HTTP 500" in delivery.reason
    assert delivery.attempts.count() == 3


def test_a_receiver_timeout_is_retried(receiver, settings, django_capture_on_commit_callbacks):
    settings.OPENMETER_WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.script = [0]  # the first request is answered after 2 s, past the 1 s timeout
    invoice_rule(receiver.url)
    [event] = emit(django_capture_on_commit_callbacks)
    delivery = NotificationDelivery.objects.get(event=event)
    assert delivery.state == DeliveryState.SUCCESS
    first, second = delivery.attempts.all()
    assert (first.state, first.status_code, second.state, second.status_code) == ("FAILED", None, "SUCCESS", 200)
    assert "timed out" in first.response_body.lower()


def test_unreachable_receiver_is_retried_then_failed(settings, django_capture_on_commit_callbacks):
    from tests.conftest import free_port

    settings.OPENMETER_WEBHOOK_MAX_ATTEMPTS = 2
    invoice_rule(f"http://127.0.0.1:{free_port()}/hook")
    [event] = emit(django_capture_on_commit_callbacks)
    delivery = NotificationDelivery.objects.get(event=event)
    assert delivery.state == DeliveryState.FAILED
    assert [a.status_code for a in delivery.attempts.all()] == [None, None]


def test_backoff_doubles(settings):
    settings.OPENMETER_WEBHOOK_RETRY_BASE_SECONDS = 30
    from notifications.conf import retry_delay_seconds

    assert [retry_delay_seconds(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]


def test_private_targets_are_refused_when_not_allowed(receiver, settings, django_capture_on_commit_callbacks):
    # given a channel created while private targets were allowed
    _channel, _ = invoice_rule(receiver.url)
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = False
    # when
    [event] = emit(django_capture_on_commit_callbacks)
    # then nothing was sent and the delivery failed for good (no retries)
    assert receiver.requests == []
    delivery = NotificationDelivery.objects.get(event=event)
    assert delivery.state == DeliveryState.FAILED
    assert "non-public address 127.0.0.1" in delivery.reason
    assert delivery.attempts.count() == 1
    with pytest.raises(InvalidInput, match="non-public"):
        channel_create(name="x", url="http://169.254.169.254/latest/meta-data")


def test_disabled_channel_gets_no_delivery_and_disabled_rule_no_event(receiver, django_capture_on_commit_callbacks):
    # a rule whose only channel is disabled fires nothing
    channel, rule = invoice_rule(receiver.url, disabled=True)
    assert emit(django_capture_on_commit_callbacks) == []
    # with one enabled channel beside the disabled one, only the enabled one gets a delivery
    other = channel_create(name="on", url=receiver.url)
    rule.channels.add(other)
    [event] = emit(django_capture_on_commit_callbacks)
    assert [d.channel_id for d in event.deliveries.all()] == [other.id] != [channel.id]
    rule.disabled = True
    rule.save()
    assert emit(django_capture_on_commit_callbacks, id="01JCCCCCCCCCCCCCCCCCCCCCCC") == []
    assert len(receiver.requests) == 1  # the one delivery to the enabled channel


def test_gathering_invoices_never_notify_and_created_fires_once(receiver, django_capture_on_commit_callbacks):
    invoice_rule(receiver.url)
    assert emit(django_capture_on_commit_callbacks, status="gathering") == []
    assert len(emit(django_capture_on_commit_callbacks)) == 1
    assert emit(django_capture_on_commit_callbacks) == []  # same invoice id: already notified
    assert len(receiver.requests) == 1


def test_invoice_updated_fires_on_every_update(receiver, django_capture_on_commit_callbacks):
    invoice_rule(receiver.url, event_type="invoice.updated")
    emit(django_capture_on_commit_callbacks, "invoice.updated", status="issued")
    emit(django_capture_on_commit_callbacks, "invoice.updated", status="paid")
    assert [r.json()["data"]["status"] for r in receiver.requests] == ["issued", "paid"]


def test_an_attempt_is_made_once_even_if_two_tasks_carry_it(receiver):
    # given an event whose delivery task has not run yet (no on-commit execution)
    invoice_rule(receiver.url)
    [event] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created")
    delivery = event.deliveries.get()
    # when two tasks for attempt 0 run one after the other (a retry message and the sweeper)
    assert delivery_attempt(delivery_id=delivery.id, expected_attempt=0) is None
    assert delivery_attempt(delivery_id=delivery.id, expected_attempt=0) is None
    # then one request was made
    assert len(receiver.requests) == 1


def test_sweeper_resends_deliveries_whose_task_was_lost(receiver):
    invoice_rule(receiver.url)
    [event] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created")  # task never ran
    assert dispatch_due_task() == 0  # too fresh: its own task may still come
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)):
        assert dispatch_due_task() == 1
    assert len(receiver.requests) == 1
    assert event.deliveries.get().state == DeliveryState.SUCCESS


def test_channel_disabled_after_the_event_fails_the_delivery_without_sending(receiver):
    channel, _ = invoice_rule(receiver.url)
    [event] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created")  # task not run yet
    channel.disabled = True
    channel.save()
    delivery = event.deliveries.get()
    assert delivery_attempt(delivery_id=delivery.id, expected_attempt=0) is None
    delivery.refresh_from_db()
    assert (delivery.state, delivery.reason) == (DeliveryState.FAILED, "channel is disabled or deleted")
    assert receiver.requests == []


def pending_delivery(receiver) -> NotificationDelivery:
    """A delivery whose task has not run (made by hand: in autocommit an emitted event is sent at once)."""
    from notifications.services.events import EventSubject, event_create

    channel, rule = invoice_rule(receiver.url, disabled=True)
    event = event_create(rule=rule, data=INVOICE, about=EventSubject())  # no delivery: the channel is disabled
    NotificationChannel.objects.filter(pk=channel.pk).update(disabled=False)
    return NotificationDelivery.objects.create(event=event, channel=channel)


def sending_in_thread(delivery, results):
    import threading

    from django.db import connection

    def attempt():
        try:
            results["a"] = delivery_attempt(delivery_id=delivery.id, expected_attempt=0)
        finally:
            connection.close()

    thread = threading.Thread(target=attempt)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_one_delivery_send_once(receiver):
    import threading

    # given a pending delivery and a receiver that holds the first request until released
    delivery = pending_delivery(receiver)
    release = threading.Event()
    receiver.hold = release
    results = {}
    # when worker A is mid-request (its attempt claimed) and worker B tries the same attempt
    a = sending_in_thread(delivery, results)
    receiver.started.wait(10)
    results["b"] = delivery_attempt(delivery_id=delivery.id, expected_attempt=0)
    assert a.is_alive()  # B returned at once while A was still sending
    release.set()
    a.join(10)
    # then only one request was made and the delivery succeeded after one attempt
    assert len(receiver.requests) == 1
    assert results == {"a": None, "b": None}
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt_count) == (DeliveryState.SUCCESS, 1)


@pytest.mark.django_db(transaction=True)
def test_while_the_receiver_answers_no_transaction_is_open_and_the_row_is_not_locked(receiver):
    import threading

    from django.db import connection, transaction

    # given a receiver that holds the request until released
    delivery = pending_delivery(receiver)
    release = threading.Event()
    receiver.hold = release
    results = {}
    worker = sending_in_thread(delivery, results)
    try:
        assert receiver.started.wait(10)
        # then, mid-request, the delivery row can be locked at once by anyone (no row lock held by the worker)
        with transaction.atomic():
            locked = NotificationDelivery.objects.select_for_update(nowait=True).get(pk=delivery.pk)
        assert locked.sending_until is not None  # the attempt is marked in flight
        # and no session of this database sits inside a transaction
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] == 0
    finally:
        release.set()
        worker.join(10)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt_count, delivery.sending_until) == (DeliveryState.SUCCESS, 1, None)


@pytest.mark.django_db(transaction=True)
def test_an_event_resent_while_its_attempt_is_in_flight_is_sent_again_after_it(receiver):
    import threading

    from notifications.services.events import event_resend

    # given an attempt in flight
    delivery = pending_delivery(receiver)
    release = threading.Event()
    receiver.hold = release
    results = {}
    worker = sending_in_thread(delivery, results)
    assert receiver.started.wait(10)
    # when the operator resends the event meanwhile (it does not wait for the receiver)
    [resent] = event_resend(event_id=delivery.event_id)
    assert (resent.state, resent.round_start) == (DeliveryState.RESENDING, 1)
    release.set()
    worker.join(10)
    # then the attempt in flight is recorded and the resend's attempt follows it at once
    plan = results["a"]
    assert (plan.expected_attempt, plan.countdown) == (1, 0)
    receiver.hold = None
    assert delivery_attempt(delivery_id=delivery.id, expected_attempt=1) is None
    assert len(receiver.requests) == 2
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt_count, delivery.round_start) == (DeliveryState.SUCCESS, 2, 1)


def test_an_attempt_whose_worker_died_is_sent_again_by_the_sweeper_once_its_claim_lapses(receiver, settings):
    from notifications.services.delivery import attempt_claim

    settings.OPENMETER_WEBHOOK_TIMEOUT_SECONDS = 10
    delivery = pending_delivery(receiver)
    start = dt.datetime.now(dt.UTC)
    # given a worker that claimed attempt 0 and died before sending (no record step)
    assert attempt_claim(delivery_id=delivery.id, expected_attempt=0) is not None
    # then no one takes the attempt over while the claim holds (10 s limit + 30 s margin), sweeper included
    assert delivery_attempt(delivery_id=delivery.id, expected_attempt=0) is None
    with time_machine.travel(start + dt.timedelta(seconds=35)):
        assert delivery_attempt(delivery_id=delivery.id, expected_attempt=0) is None
    with time_machine.travel(start + dt.timedelta(seconds=150)):  # claim lapsed, sweeper grace (2 min) passed
        assert dispatch_due_task() == 1
    # and the attempt was made once, by the sweeper's task
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt_count, delivery.attempts.count()) == (DeliveryState.SUCCESS, 1, 1)


def test_a_record_after_its_claim_lapsed_and_was_taken_over_keeps_the_attempt_but_not_the_state(receiver):
    from notifications.services.delivery import attempt_claim, attempt_record

    delivery = pending_delivery(receiver)
    start = dt.datetime.now(dt.UTC)
    slow = attempt_claim(delivery_id=delivery.id, expected_attempt=0)
    with time_machine.travel(start + dt.timedelta(minutes=5)):
        # given the slow worker's claim lapsed and another worker made the attempt, which failed (a retry is planned)
        receiver.script = [503]
        assert delivery_attempt(delivery_id=delivery.id, expected_attempt=0).expected_attempt == 1
        # when the slow worker records its success late
        late = transport.AttemptResult(ok=True, retryable=False, status_code=200, body="ok", duration_ms=1)
        assert attempt_record(claim=slow, started_at=start, result=late) is None
    # then both attempts are in the history, and the state is the one the worker holding the claim decided
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt_count, delivery.attempts.count()) == (DeliveryState.SENDING, 1, 2)


@pytest.mark.parametrize(("name", "value", "refused"), [
    ("X-Team", "caf\u00e9 \u20ac", "must be printable ASCII"),  # http.client sends latin-1 only: € raised
    ("X-Team", "a\x01b", "must be printable ASCII"),
    ("X-Team", "bil\r\nX-Admin: 1", "must be printable ASCII"),
    ("X-Team\n", "billing", "invalid header name"),
    ("Transfer-Encoding", "gzip", "set by the webhook sender"),  # the body was sent chunked under it
    ("Connection", "close, Host", "set by the webhook sender"),  # a proxy would drop the Host header
    ("Expect", "100-continue", "set by the webhook sender"),
])
def test_a_custom_header_an_http_client_cannot_send_as_given_is_refused(api, name, value, refused):
    body = {"type": "WEBHOOK", "name": "hook", "url": "http://127.0.0.1:9/hook", "customHeaders": {name: value}}
    response = api.post("/api/v1/notification/channels", body, format="json")
    assert response.status_code == 400, response.content
    assert refused in response.json()["detail"]
    assert not NotificationChannel.objects.exists()


def test_a_stored_header_the_client_cannot_send_fails_the_attempt_for_good(receiver, django_capture_on_commit_callbacks):
    # given a channel whose header was stored before values were checked
    channel, _ = invoice_rule(receiver.url)
    NotificationChannel.objects.filter(pk=channel.pk).update(custom_headers={"X-Team": "\u20ac"})
    # when an event is sent to it
    [event] = emit(django_capture_on_commit_callbacks)
    # then the attempt is recorded as failed, not retried, and nothing is sent (the task raised every time)
    delivery = NotificationDelivery.objects.get(event=event)
    assert delivery.state == DeliveryState.FAILED
    assert "request not sent" in delivery.reason
    assert delivery.attempts.count() == 1
    assert receiver.requests == []


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_the_timeout(settings, django_capture_on_commit_callbacks):
    # given a receiver that reads the request and sends its 200 a byte every 0.2 s (each read is well within the
    # timeout, the whole answer takes about 8 s) and a webhook timeout of 1 s for the whole attempt
    import socket
    import threading

    settings.OPENMETER_WEBHOOK_TIMEOUT_SECONDS = 1
    settings.OPENMETER_WEBHOOK_MAX_ATTEMPTS = 1
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:  # the sender hung up
                    return

    threading.Thread(target=drip, daemon=True).start()
    invoice_rule(f"http://127.0.0.1:{listener.getsockname()[1]}/hook")
    try:
        # when an event is delivered
        [event] = emit(django_capture_on_commit_callbacks)
    finally:
        stop.set()
        listener.close()
    # then the attempt ends at the timeout, failed, instead of waiting for the whole answer (it was a success)
    delivery = NotificationDelivery.objects.get(event=event)
    assert delivery.state == DeliveryState.FAILED
    assert "no answer within 1 s" in delivery.reason
