"""Scheduled jobs record every run (start, duration, outcome, counts); *Run now* in the back office queues a run
and its page shows what the run did once it has finished."""

import datetime as dt
import time

import pytest
import time_machine
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from playwright.sync_api import expect

from billing.models import Invoice
from billing.models import InvoiceStatus as S
from billing.services import gathering
from billing.services.gathering import LineInput
from billing.tasks import collect_gathering_invoices_task
from openmeter_site.celery import app
from openmeter_site.core.admin import elapsed_text
from openmeter_site.core.errors import NotFound
from openmeter_site.core.jobs import job_run, job_run_now
from openmeter_site.core.models import JobOutcome, JobRun
from tests.billing.helpers import FEB, T0, customer, profile

AFTER_GRACE = T0 + dt.timedelta(hours=2)  # the workflow's collection interval (PT1H) has passed


@app.task(bind=True, name="tests.job_that_fails")
def job_that_fails(self):
    with job_run(self) as run:
        run.counts["rows read"] = 3
        raise RuntimeError("the ledger is locked")


def _schedule(name: str, task: str) -> PeriodicTask:
    every, _ = IntervalSchedule.objects.get_or_create(every=300, period=IntervalSchedule.SECONDS)
    return PeriodicTask.objects.create(name=name, task=task, interval=every)


def _customer_with_a_due_fee(name: str = "Acme Corp"):
    profile(autoAdvance=False)
    cust = customer(name=name, subjects=(name.lower().replace(" ", "-"),))
    gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[
        LineInput(name="Support plan", period_start=T0, period_end=FEB, invoice_at=T0,
                  price={"type": "flat", "amount": "99.5", "paymentTerm": "in_advance"})])
    return cust


@pytest.mark.django_db
def test_a_job_run_records_its_start_duration_outcome_and_counts():
    _customer_with_a_due_fee("Acme Corp")
    _customer_with_a_due_fee("Globex")
    # when
    with time_machine.travel(AFTER_GRACE, tick=False):
        assert collect_gathering_invoices_task.apply().get() == 2
    # then
    run = JobRun.objects.get(job="billing.collect_gathering_invoices")
    assert run.outcome == JobOutcome.SUCCEEDED
    assert run.counts == {"drafts created": 2, "customers due": 2}
    assert run.counts_text() == "customers due: 2, drafts created: 2"
    assert run.started_at == AFTER_GRACE and run.duration == dt.timedelta(0)  # the clock stood still
    assert run.started_by == "worker" and run.task_id
    assert Invoice.objects.exclude(status=S.GATHERING).count() == 2


@pytest.mark.django_db
def test_a_run_sent_by_the_schedule_says_so():
    collect_gathering_invoices_task.apply(headers={"periodic_task_name": "Billing: collect gathering invoices"})
    run = JobRun.objects.get()
    assert run.started_by == "schedule"
    assert run.counts == {"drafts created": 0, "customers due": 0}


@pytest.mark.django_db
def test_a_failing_run_is_recorded_with_its_error_and_the_error_goes_on():
    with pytest.raises(RuntimeError, match="ledger is locked"):
        job_that_fails.apply().get()
    run = JobRun.objects.get(job="tests.job_that_fails")
    assert run.outcome == JobOutcome.FAILED
    assert run.error == "RuntimeError: the ledger is locked"
    assert run.counts == {"rows read": 3}  # what it did before failing
    assert run.finished_at is not None


@pytest.mark.django_db
def test_runs_older_than_the_retention_are_pruned_when_the_job_runs_again(settings):
    settings.OPENMETER_JOB_RUN_RETENTION_DAYS = 7
    now = timezone.now()
    old = JobRun.objects.create(job="billing.collect_gathering_invoices", created_at=now - dt.timedelta(days=8))
    kept = JobRun.objects.create(job="billing.collect_gathering_invoices", created_at=now - dt.timedelta(days=6))
    other_job = JobRun.objects.create(job="billing.mark_overdue_invoices", created_at=now - dt.timedelta(days=30))
    # when
    collect_gathering_invoices_task.apply()
    # then
    remaining = set(JobRun.objects.values_list("pk", flat=True))
    assert old.pk not in remaining
    assert {kept.pk, other_job.pk} <= remaining  # another job's history is pruned by its own runs
    assert len(remaining) == 3


@pytest.mark.django_db
def test_run_now_of_an_unknown_job_is_refused_and_records_nothing():
    with pytest.raises(NotFound):
        job_run_now(job="billing.no_such_job", actor="admin:boss")
    assert not JobRun.objects.exists()


# --- the back office ---------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_run_now_page_runs_the_job_and_shows_what_it_did(admin_client, django_capture_on_commit_callbacks):
    _customer_with_a_due_fee()
    task = _schedule("Billing: collect gathering invoices (period close)", "billing.collect_gathering_invoices")
    url = f"/admin/django_celery_beat/periodictask/{task.pk}/do/run_now/"
    assert "Run this job once now" in admin_client.get(url).content.decode()
    # when
    with time_machine.travel(AFTER_GRACE, tick=False), django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url)  # the run is sent once the request's writes are committed
    # then
    run = JobRun.objects.get(job="billing.collect_gathering_invoices")
    assert response["Location"] == f"/admin/core/jobrun/{run.pk}/change/"
    page = admin_client.get(response["Location"]).content.decode()
    assert "Finished: customers due: 1, drafts created: 1." in page
    assert 'http-equiv="refresh"' not in page  # finished: no more refreshing
    assert run.started_by == "admin:admin" and run.outcome == JobOutcome.SUCCEEDED
    assert Invoice.objects.filter(status=S.DRAFT_MANUAL_APPROVAL_NEEDED).count() == 1
    # the schedules list shows the last run
    listing = admin_client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "customers due: 1, drafts created: 1" in listing and "Succeeded" in listing


@pytest.mark.django_db
def test_run_now_of_a_failing_job_shows_the_failure_not_a_500(admin_client, django_capture_on_commit_callbacks):
    task = _schedule("Reconcile the ledger", "tests.job_that_fails")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/do/run_now/")
    page = admin_client.get(response["Location"])
    assert page.status_code == 200
    assert "Failed: RuntimeError: the ledger is locked" in page.content.decode()
    assert JobRun.objects.get().outcome == JobOutcome.FAILED


@pytest.mark.django_db
def test_a_run_still_waiting_refreshes_its_page(admin_client):
    run = JobRun.objects.create(job="billing.collect_gathering_invoices", task_id="t-1", outcome=JobOutcome.QUEUED,
                                started_by="admin:admin")
    page = admin_client.get(f"/admin/core/jobrun/{run.pk}/change/").content.decode()
    assert "Waiting for a worker" in page
    assert '<meta http-equiv="refresh" content="2">' in page


@pytest.mark.django_db
def test_bulk_run_now_queues_each_selected_job_with_a_link_to_its_run(admin_client, django_capture_on_commit_callbacks):
    first = _schedule("Billing: mark unpaid invoices overdue", "billing.mark_overdue_invoices")
    second = _schedule("Billing: auto-advance due draft invoices", "billing.advance_due_invoices")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/django_celery_beat/periodictask/",
                                     {"action": "run_tasks", "_selected_action": [first.pk, second.pk]}, follow=True)
    assert "Queued 2 run(s)" in response.content.decode()
    assert sorted(JobRun.objects.values_list("job", "outcome")) == [
        ("billing.advance_due_invoices", JobOutcome.SUCCEEDED), ("billing.mark_overdue_invoices", JobOutcome.SUCCEEDED)]


@pytest.mark.django_db
def test_job_run_history_lists_runs_with_the_schedule_name(admin_client, django_assert_max_num_queries):
    _schedule("Billing: collect gathering invoices (period close)", "billing.collect_gathering_invoices")
    for _ in range(30):
        collect_gathering_invoices_task.apply()
    with django_assert_max_num_queries(8):  # no query per row
        page = admin_client.get("/admin/core/jobrun/").content.decode()
    assert page.count("Billing: collect gathering invoices (period close)") >= 30


def test_run_now_with_a_real_worker_fills_in_the_queued_run(transactional_db, start_celery_worker):
    start_celery_worker()
    run = job_run_now(job="billing.mark_overdue_invoices", actor="admin:boss")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not run.is_finished:
        time.sleep(0.2)
        run.refresh_from_db()
    assert run.outcome == JobOutcome.SUCCEEDED, run.error
    assert run.started_by == "admin:boss"
    assert run.counts == {"invoices past due": 0}
    assert JobRun.objects.count() == 1  # the worker filled in the queued row


@pytest.mark.django_db(transaction=True)
def test_operator_runs_the_period_close_now_and_sees_what_it_did(operator_page):
    page = operator_page
    _customer_with_a_due_fee()
    _schedule("Billing: collect gathering invoices (period close)", "billing.collect_gathering_invoices")
    page.goto("/admin/django_celery_beat/periodictask/")
    expect(page.locator("#result_list")).to_contain_text("never run")
    page.get_by_role("link", name="Run now").click()
    expect(page.locator("#content")).to_contain_text("Run this job once now")
    page.locator("input[type=submit][value='Run now']").click()
    # the fee was due at T0 (2026-01-01), long before now: the run makes its draft
    expect(page.locator(".om-run-summary")).to_have_text("Finished: customers due: 1, drafts created: 1.")
    expect(page.locator(".field-started_by")).to_contain_text("admin:operator")
    page.goto("/admin/django_celery_beat/periodictask/")
    expect(page.locator("#result_list")).to_contain_text("Succeeded")
    expect(page.locator("#result_list")).to_contain_text("drafts created: 1")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.42, "0.4 s"), (200, "3 min 20 s"), (7500, "2 h 5 min"), (3 * 86400 + 4 * 3600 + 59, "3 days 4 h"),
     (86400, "1 day 0 h")],
)
def test_elapsed_time_as_an_operator_reads_it(seconds, shown):
    assert elapsed_text(dt.timedelta(seconds=seconds)) == shown


@pytest.mark.django_db
def test_run_now_with_the_job_queue_down_tries_the_broker_once_and_fails_the_run(
    admin_client, django_capture_on_commit_callbacks, monkeypatch
):
    # given a "Redis" that accepts connections and drops them at once (counting them), and tasks sent to a broker
    import socket
    import threading

    from openmeter_site.core import broker as kicks
    from openmeter_site.core.jobs import NOT_QUEUED

    monkeypatch.setattr(kicks, "_paused_until", 0.0)  # the failed kick pauses kicks in this process: undone after
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def drop_connections() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=drop_connections, daemon=True).start()
    saved = app.conf.task_always_eager, app.conf.broker_url, app.conf.broker_write_url
    url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    app.conf.task_always_eager, app.conf.broker_url, app.conf.broker_write_url = False, url, url
    task = _schedule("Reconcile the ledger", "tests.job_that_fails")
    try:
        # when an operator runs it now
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/do/run_now/")
    finally:
        app.conf.task_always_eager, app.conf.broker_url, app.conf.broker_write_url = saved
        listener.close()
    # then the broker was tried once (Celery's publishing retried, then waited on the result store: ~20 s in all)
    # and the run says it was not queued
    assert len(accepted) == 1
    run = JobRun.objects.get()
    assert (run.outcome, run.error) == (JobOutcome.FAILED, NOT_QUEUED)
    assert "the job queue (Redis) did not answer" in admin_client.get(response["Location"]).content.decode()
