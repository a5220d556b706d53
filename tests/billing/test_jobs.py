"""Periodic jobs: idempotent, crash-safe (one transaction per chunk of customers or per invoice), and safe with two
workers."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Invoice, InvoiceEvent, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import actions, drafts, gathering, jobs
from billing.services.gathering import LineInput
from billing.services.locks import customers_claimed
from billing.services.profiles import customer_override_upsert
from billing.tasks import collect_gathering_invoices_task
from catalog.models import Feature
from metering.postgres.fold import fold_all
from openmeter_site.core.errors import DomainError
from openmeter_site.core.models import JobRun
from tests.billing.helpers import FEB, T0, custom_invoicing_app, customer, metered_feature, profile
from tests.factories import FeatureFactory, MeterFactory, ingest

AFTER_CLOSE = FEB + dt.timedelta(hours=1)


def _lines(feature_key: str) -> list[LineInput]:
    return [
        LineInput(name="Fee", period_start=T0, period_end=FEB, invoice_at=T0,
                  price={"type": "flat", "amount": "20", "paymentTerm": "in_advance"}),
        LineInput(name="Tokens", period_start=T0, period_end=FEB, invoice_at=FEB, feature_key=feature_key,
                  price={"type": "unit", "amount": "0.5"}),
    ]


def _setup_customers(n: int, **workflow) -> list:
    if workflow:
        profile(**workflow)
    feature = metered_feature()
    customers = [customer(name=f"Customer {i}", subjects=(f"sub-{i}",)) for i in range(n)]
    for i, c in enumerate(customers):
        ingest([{"subject": f"sub-{i}", "type": "tokens", "time": T0 + dt.timedelta(days=3),
                 "data": {"tokens": 10 * (i + 1)}}])
        gathering.pending_lines_create(customer_id=c.pk, currency="USD", lines=_lines(feature.key))
    return customers


def _standard_invoices() -> list[Invoice]:
    return list(Invoice.objects.exclude(status=S.GATHERING).order_by("customer__name"))


@pytest.mark.django_db
def test_collect_waits_for_the_grace_period_then_invoices_once():
    customers = _setup_customers(3, autoAdvance=False)
    # the in-advance fee is due at T0 but collection waits T0 + PT1H
    assert jobs.collect_gathering_invoices(at=T0 + dt.timedelta(minutes=30)) == jobs.PeriodClose(customers=0, drafts=0)
    assert jobs.collect_gathering_invoices(at=T0 + dt.timedelta(hours=1)) == jobs.PeriodClose(customers=3, drafts=3)
    early = _standard_invoices()
    # fee only (usage is due at the end of the period): 20 each
    assert [str(i.total) for i in early] == ["20.0000000000000000000"] * 3
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)  # a rerun changes nothing
    invoices = _standard_invoices()
    assert len(invoices) == 6
    # usage: customer i used 10 * (i + 1) tokens * 0.5
    usage_totals = sorted(i.total for i in invoices if i.total != 20)
    assert [int(t) for t in usage_totals] == [5, 10, 15]
    assert all(i.status == S.DRAFT_MANUAL_APPROVAL_NEEDED for i in invoices)
    assert InvoiceLine.objects.filter(parent__isnull=True).count() == 6  # no line doubled
    assert not Invoice.objects.filter(status=S.GATHERING).exists()
    assert len({c.pk for c in customers}) == 3


@pytest.mark.django_db
def test_collect_crash_halfway_then_rerun_gives_the_same_invoices():
    _setup_customers(3, autoAdvance=False)
    # a run that stops after the first customer (as if the worker died), then a full rerun
    assert jobs.collect_gathering_invoices(at=AFTER_CLOSE, limit=1).customers == 1
    assert len(_standard_invoices()) == 1
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    invoices = _standard_invoices()
    assert len(invoices) == 3
    # 20 + 10 * (i + 1) * 0.5
    assert sorted(int(i.total) for i in invoices) == [25, 30, 35]


@pytest.mark.django_db
def test_auto_advance_after_the_draft_period():
    _setup_customers(1, draftPeriod="P1D")
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    [invoice] = _standard_invoices()
    assert invoice.status == S.DRAFT_WAITING_AUTO_APPROVAL
    assert invoice.draft_until == AFTER_CLOSE + dt.timedelta(days=1)
    assert jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(hours=23)) == 0
    assert jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(days=1)) == 1
    invoice.refresh_from_db()
    assert invoice.status == S.PAID
    # due date: draftUntil + P30D
    assert invoice.due_at == AFTER_CLOSE + dt.timedelta(days=31)
    assert jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(days=2)) == 0


@pytest.mark.django_db
def test_an_invoice_that_fails_to_advance_with_a_database_error_does_not_stop_the_others(caplog):
    from django.db import DataError

    _setup_customers(2, draftPeriod="P1D")
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    first, second = _standard_invoices()

    def overflow_on_first(execute, sql, params, many, context):  # as PostgreSQL's "numeric field overflow"
        if sql.startswith('UPDATE "billing_invoice"') and first.pk in (params or ()):
            raise DataError("numeric field overflow")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(overflow_on_first):
        assert jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(days=1)) == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (S.DRAFT_WAITING_AUTO_APPROVAL, S.PAID)
    assert f"advancing invoice {first.pk} failed" in caplog.text


@pytest.mark.django_db
def test_overdue_after_the_due_date():
    profile(app=custom_invoicing_app(draft_hook=False, issuing_hook=False), dueAfter="P7D")
    _setup_customers(1)
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    [invoice] = _standard_invoices()
    assert invoice.status == S.PAYMENT_PENDING
    assert jobs.mark_overdue_invoices(at=invoice.due_at) == 0  # due_at itself is not yet overdue
    jobs.mark_overdue_invoices(at=invoice.due_at + dt.timedelta(seconds=1))
    invoice.refresh_from_db()
    assert invoice.status == S.OVERDUE
    jobs.mark_overdue_invoices(at=invoice.due_at + dt.timedelta(days=1))
    assert InvoiceEvent.objects.filter(invoice=invoice, to_status=S.OVERDUE).count() == 1


def _in_threads(target, n: int = 2) -> list:
    results: list = []
    barrier = threading.Barrier(n)

    def run() -> None:
        try:
            barrier.wait()
            results.append(target())
        except DomainError as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_two_period_close_runs_at_once_produce_one_result():
    _setup_customers(4, autoAdvance=False)
    _in_threads(lambda: jobs.collect_gathering_invoices(at=AFTER_CLOSE))
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)  # whatever one worker skipped, a later run picks up
    invoices = _standard_invoices()
    assert len(invoices) == 4
    assert InvoiceLine.objects.filter(parent__isnull=True).count() == 8
    # 20 + 10 * (i + 1) * 0.5
    assert sorted(int(i.total) for i in invoices) == [25, 30, 35, 40]


@pytest.mark.django_db(transaction=True)
def test_two_workers_advancing_the_same_invoice_produce_one_result():
    _setup_customers(1, autoAdvance=False)
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    [invoice] = _standard_invoices()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        results = _in_threads(lambda: actions.invoice_approve(invoice_id=invoice.pk))
    winners = [r for r in results if isinstance(r, Invoice)]
    assert len(winners) == 1
    assert winners[0].status == S.PAID
    invoice.refresh_from_db()
    assert invoice.status == S.PAID
    assert invoice.number == "OM-SANDBOX-CU0-1"
    assert InvoiceEvent.objects.filter(invoice=invoice, trigger="approve").count() == 1
    assert InvoiceEvent.objects.filter(invoice=invoice, to_status=S.PAID).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_auto_advance_jobs_at_once_issue_once():
    _setup_customers(3, draftPeriod="P1D")
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    assert all(i.status == S.DRAFT_WAITING_AUTO_APPROVAL for i in _standard_invoices())
    _in_threads(lambda: jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(days=1)))
    jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(days=1))  # picks up whatever a busy worker skipped
    invoices = _standard_invoices()
    assert all(i.status == S.PAID for i in invoices)
    # gap-free: three numbers, 1..3, whichever worker issued which
    assert sorted(int(i.number.rsplit("-", 1)[1]) for i in invoices) == [1, 2, 3]
    for invoice in invoices:
        assert InvoiceEvent.objects.filter(invoice=invoice, to_status=S.ISSUED).count() == 1


# --- period close, set-based per chunk --------------------------------------------------------------------

def _close_queries(**kwargs) -> int:
    with CaptureQueriesContext(connection) as ctx:
        jobs.collect_gathering_invoices(at=AFTER_CLOSE, **kwargs)
    return len(ctx.captured_queries)


def _close_customers(feature, n: int, tag: str, *, copies: int = 1, events: int = 1) -> list:
    """n customers, each with `copies` times (fee of 20 + tokens at 0.5) and `events` events of 2 tokens."""
    customers = [customer(name=f"{tag} {i}", subjects=(f"{tag}-{i}",)) for i in range(n)]
    for i, c in enumerate(customers):
        ingest([{"subject": f"{tag}-{i}", "type": "tokens", "time": T0 + dt.timedelta(hours=1 + j),
                 "data": {"tokens": 2}} for j in range(events)])
        gathering.pending_lines_create(customer_id=c.pk, currency="USD", lines=_lines(feature.key) * copies)
    return customers


def _totals(customers) -> list[Decimal]:
    return [i.total for i in Invoice.objects.filter(customer__in=customers).order_by("customer__name")]


@pytest.mark.django_db
def test_period_close_queries_do_not_grow_with_lines_or_events():
    # given 3 customers with 2 lines and 1 event each, and 3 with 6 lines and 10 events each
    profile(autoAdvance=False)
    feature = metered_feature()
    small = _close_customers(feature, 3, "small")
    small_queries = _close_queries()
    wide = _close_customers(feature, 3, "wide", copies=3, events=10)
    # when each group is closed, then the same number of statements closes both
    assert _close_queries() == small_queries
    # small: 20 + 1 event * 2 tokens * 0.5 = 21; wide: 3 * 20 + 3 lines * (10 * 2 tokens * 0.5) = 90
    assert _totals(small) == [Decimal("21")] * 3
    assert _totals(wide) == [Decimal("90")] * 3
    assert InvoiceLine.objects.filter(invoice__customer__in=wide, parent__isnull=True).count() == 18


@pytest.mark.django_db
def test_period_close_queries_per_invoice_do_not_grow_with_customers():
    profile(autoAdvance=False)
    feature = metered_feature()
    _close_customers(feature, 2, "few")
    few = _close_queries()
    _close_customers(feature, 6, "more")
    more = _close_queries()
    # one chunk each, and nothing is done per invoice (the sandbox app syncs drafts before they are saved)
    assert more == few


@pytest.mark.django_db
@pytest.mark.parametrize("folded", [False, True], ids=["pending_case", "folded_case"])
def test_period_close_applies_advanced_filters_in_as_many_statements(folded):
    # given: 3 customers billed on a plain feature, then 3 on a feature counting only gpt-4 events
    profile(autoAdvance=False)
    plain = metered_feature()
    meter = MeterFactory(slug="llm_meter", event_type="llm", value_property="$.tokens", group_by={"model": "$.model"})
    gpt4 = FeatureFactory(key="gpt4", meter=meter, meter_group_by_filters={"model": "claude"},
                          advanced_meter_group_by_filters={"model": {"$in": ["gpt-4"]}})
    plain_customers = _close_customers(plain, 3, "plain")
    plain_queries = _close_queries()
    gpt4_customers = [customer(name=f"gpt4 {i}", subjects=(f"gpt4-{i}",)) for i in range(3)]
    for i, c in enumerate(gpt4_customers):
        ingest([{"subject": f"gpt4-{i}", "type": "llm", "time": T0 + dt.timedelta(hours=1 + j),
                 "data": {"tokens": tokens, "model": model}}
                for j, (model, tokens) in enumerate([("gpt-4", 10 * (i + 1)), ("gpt-4o", 100), ("claude", 1000)])])
        gathering.pending_lines_create(customer_id=c.pk, currency="USD", lines=_lines(gpt4.key))
    if folded:
        fold_all()
    # when closed, then the filtered feature costs the same statements as the plain one
    assert _close_queries() == plain_queries
    # plain: 20 + 2 tokens * 0.5 = 21; gpt4: 20 + 0.5 * (10, 20, 30) gpt-4 tokens = 25, 30, 35
    assert _totals(plain_customers) == [Decimal("21")] * 3
    assert _totals(gpt4_customers) == [Decimal("25"), Decimal("30"), Decimal("35")]


@pytest.mark.django_db
def test_period_close_numbers_drafts_per_profile_without_gaps():
    # given customers billed by two profiles, closed in chunks of 2
    default = profile(autoAdvance=False)
    other = profile(autoAdvance=False, default=False)
    feature = metered_feature()
    customers = _close_customers(feature, 5, "Big Co")
    for c in customers[1::2]:
        customer_override_upsert(customer_id=c.pk, billing_profile_id=other.pk)
    # when the period closes
    jobs.collect_gathering_invoices(at=AFTER_CLOSE, chunk=2)
    # then each profile numbers its drafts 1, 2, ... in customer order
    numbers = {(i.billing_profile_id, i.number) for i in Invoice.objects.filter(customer__in=customers)}
    assert numbers == {(default.pk, "DRAFT-BICO-1"), (default.pk, "DRAFT-BICO-2"), (default.pk, "DRAFT-BICO-3"),
                       (other.pk, "DRAFT-BICO-1"), (other.pk, "DRAFT-BICO-2")}


@pytest.mark.django_db
def test_period_close_marks_an_invalid_draft_and_goes_on_with_the_others():
    # given two customers in one chunk; the second one's metered feature is archived after its line was added
    profile(autoAdvance=False)
    tokens = metered_feature()
    calls = metered_feature("calls")
    good = _close_customers(tokens, 1, "good")[0]
    bad = _close_customers(calls, 1, "bad")[0]
    Feature.objects.filter(pk=calls.pk).update(archived_at=T0)
    # when the period closes
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    # then the valid draft waits for approval and the other one is invalid, with the reason
    good_invoice = Invoice.objects.get(customer=good)
    bad_invoice = Invoice.objects.get(customer=bad)
    assert good_invoice.status == S.DRAFT_MANUAL_APPROVAL_NEEDED
    assert bad_invoice.status == S.DRAFT_INVALID
    assert ["feature 'calls' not found" in i["message"] for i in bad_invoice.validation_issues] == [True]
    walked = [("", "draft.created", "create"), ("draft.created", "draft.waiting_for_collection", "next"),
              ("draft.waiting_for_collection", "draft.collecting", "next"),
              ("draft.collecting", "draft.validating", "next")]

    def trail(invoice: Invoice) -> list[tuple[str, str, str]]:
        return list(invoice.events.order_by("id").values_list("from_status", "to_status", "trigger"))

    assert trail(good_invoice) == [*walked, ("draft.validating", "draft.syncing", "next"),
                                   ("draft.syncing", "draft.manual_approval_needed", "next")]
    assert trail(bad_invoice) == [*walked, ("draft.validating", "draft.invalid", "failed")]


class WorkerDied(Exception):
    pass


def _die_at_the_nth(n: int, table: str):
    """A database connection wrapper that fails the n-th INSERT (or COPY) into `table`, as a worker dying there
    would."""
    seen = [0]

    def wrapper(execute, sql, params, many, context):
        if isinstance(sql, str) and sql.startswith((f'INSERT INTO "{table}"', f'COPY "{table}"')):
            seen[0] += 1
            if seen[0] == n:
                raise WorkerDied(f"died before {sql[:40]}")
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.django_db
def test_a_customer_whose_invoice_cannot_be_made_does_not_hold_up_the_others_in_its_chunk(caplog):
    # given 3 customers closed in one chunk, the second of whom used 3 x 9E+18 tokens: 2.7E+19 at 0.5 is a line
    # amount (1.35E+19) that the invoice's amount columns cannot hold (less than 1E+19)
    customers = _setup_customers(3, autoAdvance=False)
    ingest([{"subject": "sub-1", "type": "tokens", "time": T0 + dt.timedelta(days=4, minutes=m),
             "data": {"tokens": "9000000000000000000"}} for m in range(3)])
    # when the period closes
    closed = jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    # then the two others are invoiced (20 fee + 10 * (i + 1) tokens * 0.5), the second customer is not
    assert closed == jobs.PeriodClose(customers=3, drafts=2, failed=1)
    invoices = _standard_invoices()
    assert [(i.customer_id, i.total) for i in invoices] == [(customers[0].pk, 25), (customers[2].pk, 35)]
    waiting = InvoiceLine.objects.filter(invoice__customer=customers[1], invoice__status=S.GATHERING, parent__isnull=True)
    assert waiting.count() == 2
    assert f"the invoice of customer {customers[1].pk} could not be made" in caplog.text
    # and the next run tries that customer again, alone, and leaves the others' invoices as they are
    assert jobs.collect_gathering_invoices(at=AFTER_CLOSE) == jobs.PeriodClose(customers=1, drafts=0, failed=1)
    assert len(_standard_invoices()) == 2


@pytest.mark.django_db
def test_usage_past_1e19_is_invoiced_when_its_amount_fits():
    # given a customer who used 3 x 9E+18 tokens (more than one value may be) at 0.0000001 USD each
    profile(autoAdvance=False)
    feature = metered_feature()
    big = customer(name="Big", subjects=("big",))
    ingest([{"subject": "big", "type": "tokens", "time": T0 + dt.timedelta(days=4, minutes=m),
             "data": {"tokens": "9000000000000000000"}} for m in range(3)])
    gathering.pending_lines_create(customer_id=big.pk, currency="USD", lines=[
        LineInput(name="Tokens", period_start=T0, period_end=FEB, invoice_at=FEB, feature_key=feature.key,
                  price={"type": "unit", "amount": "0.0000001"})])
    # when the period closes
    assert jobs.collect_gathering_invoices(at=AFTER_CLOSE) == jobs.PeriodClose(customers=1, drafts=1)
    # then the draft bills 27000000000000000000 tokens: 2,700,000,000,000 USD
    [invoice] = _standard_invoices()
    assert invoice.total == Decimal("2700000000000")
    line = invoice.all_lines.get(parent__isnull=True)
    assert (line.quantity, line.metered_quantity) == (Decimal("27000000000000000000"),) * 2
    assert [c.quantity for c in line.children.all()] == [Decimal("27000000000000000000")]


@pytest.mark.django_db
def test_a_line_amount_past_1e19_is_refused_naming_it():
    # given 2.7E+19 tokens at 0.5: a line amount of 1.35E+19, which no amount column holds
    profile(autoAdvance=False)
    feature = metered_feature()
    big = customer(name="Big", subjects=("big",))
    ingest([{"subject": "big", "type": "tokens", "time": T0 + dt.timedelta(days=4, minutes=m),
             "data": {"tokens": "9000000000000000000"}} for m in range(3)])
    gathering.pending_lines_create(customer_id=big.pk, currency="USD", lines=[
        LineInput(name="Tokens", period_start=T0, period_end=FEB, invoice_at=FEB, feature_key=feature.key,
                  price={"type": "unit", "amount": "0.5"})])
    # when it is invoiced now, then the refusal names the amount (not PostgreSQL's "numeric field overflow")
    with pytest.raises(DomainError, match=r"amount: 1\.350000E\+19 is out of range \(less than 1E\+19 in magnitude\)"):
        drafts.invoice_pending_lines(customer_id=big.pk, at=AFTER_CLOSE)


@pytest.mark.django_db(transaction=True)
def test_period_close_crash_inside_a_chunk_leaves_nothing_of_it_and_a_rerun_makes_the_same_invoices():
    # given 4 customers closed in chunks of 2, and a worker dying while writing the second chunk's audit rows
    _setup_customers(4, autoAdvance=False)
    with connection.execute_wrapper(_die_at_the_nth(2, "billing_invoiceevent")), pytest.raises(WorkerDied):
        jobs.collect_gathering_invoices(at=AFTER_CLOSE, chunk=2)
    # then the first chunk is committed and nothing of the second is left: no draft, no moved line, no number
    assert sorted(i.number for i in _standard_invoices()) == ["DRAFT-CU0-1", "DRAFT-CU1-2"]
    assert Invoice.objects.filter(status=S.GATHERING).count() == 2
    assert InvoiceLine.objects.filter(invoice__status=S.GATHERING, parent__isnull=True).count() == 4
    # when the job runs again
    jobs.collect_gathering_invoices(at=AFTER_CLOSE, chunk=2)
    # then every customer has its one invoice, numbered without a gap, with nothing doubled
    invoices = _standard_invoices()
    assert [i.number for i in invoices] == ["DRAFT-CU0-1", "DRAFT-CU1-2", "DRAFT-CU2-3", "DRAFT-CU3-4"]
    # 20 + 10 * (i + 1) * 0.5
    assert [int(i.total) for i in invoices] == [25, 30, 35, 40]
    assert InvoiceLine.objects.filter(parent__isnull=True).count() == 8
    assert InvoiceEvent.objects.filter(trigger="create").count() == 4
    assert not Invoice.objects.filter(status=S.GATHERING).exists()


@pytest.mark.django_db(transaction=True)
def test_two_period_close_runs_over_several_chunks_produce_one_invoice_per_customer():
    # given 6 customers and two workers closing them at once in chunks of 2
    _setup_customers(6, autoAdvance=False)
    _in_threads(lambda: jobs.collect_gathering_invoices(at=AFTER_CLOSE, chunk=2))
    jobs.collect_gathering_invoices(at=AFTER_CLOSE, chunk=2)  # whatever a busy worker skipped
    # then one invoice per customer, each line invoiced once, numbers 1..6 whichever worker took which
    invoices = _standard_invoices()
    assert len({i.customer_id for i in invoices}) == len(invoices) == 6
    assert sorted(int(i.number.rsplit("-", 1)[1]) for i in invoices) == [1, 2, 3, 4, 5, 6]
    assert InvoiceLine.objects.filter(parent__isnull=True).count() == 12
    assert InvoiceEvent.objects.filter(trigger="create").count() == 6
    # 20 + 10 * (i + 1) * 0.5
    assert [int(i.total) for i in invoices] == [25, 30, 35, 40, 45, 50]


@pytest.mark.django_db
def test_the_scheduled_close_sends_its_batches_to_the_workers_and_closes_the_first_itself():
    # given 5 customers due, and the scheduled job taking batches of 2 (test settings run sent tasks at once)
    _setup_customers(5, autoAdvance=False)
    # when it runs
    assert collect_gathering_invoices_task.apply(kwargs={"batch_size": 2, "at": AFTER_CLOSE.isoformat()}).get() == 2
    # then it sent the two further batches as tasks of their own, each closed as one run
    runs = list(JobRun.objects.filter(job="billing.collect_gathering_invoices").order_by("created_at"))
    assert [r.counts for r in runs] == [
        {"batches sent to the workers": 2, "drafts created": 2, "customers due": 2},
        {"drafts created": 2, "customers due": 2},
        {"drafts created": 1, "customers due": 1},
    ]
    # and every customer has one invoice (20 + 10 * (i + 1) * 0.5), numbered without a gap in whichever order the
    # batches ran (here the sent ones first)
    invoices = _standard_invoices()
    assert [int(i.total) for i in invoices] == [25, 30, 35, 40, 45]
    assert sorted(int(i.number.rsplit("-", 1)[1]) for i in invoices) == [1, 2, 3, 4, 5]


@pytest.mark.django_db(transaction=True)
def test_a_batch_leaves_the_customers_another_workers_batch_holds():
    # given 3 customers due, the second one held by another worker's batch
    customers = _setup_customers(3, autoAdvance=False)
    held, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        try:
            with customers_claimed("close", [customers[1].pk]) as claimed:
                assert claimed == [customers[1].pk]
                held.set()
                assert release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert held.wait(30)
    # when this worker's batch has all three
    closed = jobs.close_batch([c.pk for c in customers], at=AFTER_CLOSE)
    release.set()
    thread.join(30)
    # then it closed the two it could claim and left the held one to its holder
    assert closed == jobs.PeriodClose(customers=3, drafts=2)
    assert [i.customer_id for i in _standard_invoices()] == [customers[0].pk, customers[2].pk]
    # and once released, the next run closes it: 20 + 10 * 2 * 0.5
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    assert [(i.customer_id, int(i.total)) for i in _standard_invoices()] == [
        (customers[0].pk, 25), (customers[1].pk, 30), (customers[2].pk, 35)]


def _pause_after_the_first_read_of(table: str, paused: threading.Event, go: threading.Event):
    """A database connection wrapper that holds its thread right after the first SELECT from `table`."""
    done = [False]

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not done[0] and isinstance(sql, str) and sql.startswith("SELECT") and f'FROM "{table}"' in sql:
            done[0] = True
            paused.set()
            assert go.wait(30)
        return result

    return wrapper


@pytest.mark.django_db(transaction=True)
def test_period_close_goes_on_when_invoice_pending_lines_closes_a_gathering_invoice_under_it(api):
    # given 3 customers due for period close, and the job paused right after it read their due lines
    customers = _setup_customers(3, autoAdvance=False)
    paused, go = threading.Event(), threading.Event()
    outcome: list = []

    def run_job() -> None:
        try:
            with connection.execute_wrapper(_pause_after_the_first_read_of("billing_invoiceline", paused, go)):
                outcome.append(jobs.collect_gathering_invoices(at=AFTER_CLOSE))
        except Exception as exc:
            outcome.append(exc)
        finally:
            connection.close()

    job = threading.Thread(target=run_job)
    job.start()
    assert paused.wait(30)
    # when the API invoices the second customer's pending lines (its gathering invoice is closed and deleted)
    response = api.post("/api/v1/billing/invoices/invoice", {"customerId": customers[1].pk}, format="json")
    assert response.status_code == 201, response.content
    go.set()
    job.join(30)
    # then the run went on: the other two customers got their drafts, the second one only the API's invoice
    assert outcome == [jobs.PeriodClose(customers=3, drafts=2)]
    invoices = _standard_invoices()
    assert [(i.customer_id, int(i.total)) for i in invoices] == [
        (customers[0].pk, 25), (customers[1].pk, 30), (customers[2].pk, 35)  # 20 + 10 * (i + 1) * 0.5
    ]
    assert InvoiceLine.objects.filter(parent__isnull=True).count() == 6
    assert not Invoice.objects.filter(status=S.GATHERING).exists()
