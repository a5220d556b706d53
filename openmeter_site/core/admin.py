"""Back office: API keys, scheduled jobs (each job's last run and *Run now*) and the record of their runs."""

import datetime as dt
from typing import Any

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from openmeter_site.admin_ui.actions import ObjectAction, ObjectActionsMixin, actor
from openmeter_site.admin_ui.display import when
from openmeter_site.admin_ui.filters import happened_filter
from openmeter_site.core.jobs import job_run_now, last_run_of, with_last_run
from openmeter_site.core.login_throttle import ThrottledAdminAuthenticationForm
from openmeter_site.core.models import ApiKey, JobOutcome, JobRun

# The login page says when a login is refused for too many failures.
admin.site.login_form = ThrottledAdminAuthenticationForm


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [happened_filter("revoked_at", "revoked")]
    search_fields = ["name", "prefix"]
    readonly_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if not change:
            raw = obj.set_new_secret()
            messages.warning(request, f"New API key (shown once, copy it now): {raw}")
        super().save_model(request, obj, form, change)

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")


# --- scheduled jobs -------------------------------------------------------------------------------------------

def elapsed_text(value: dt.timedelta | None) -> str:
    """A duration as an operator reads it: "0.4 s", "3 min 20 s", "2 h 5 min", "3 days 4 h"."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} day{'s' if days > 1 else ''} {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def outcome_badge(run: JobRun) -> str:
    return format_html('<span class="om-status om-outcome-{}">{}</span>', run.outcome, run.get_outcome_display())


def run_summary(run: JobRun | None) -> str:
    """A run in one line, for the dashboard and the jobs list: "Succeeded 12:05 CET in 0.4 s: 12 drafts created"."""
    if run is None:
        return mark_safe('<span class="om-empty">never run</span>')
    url = reverse("admin:core_jobrun_change", args=[run.pk])
    if not run.is_finished:
        return format_html('<a href="{}">{}</a> since {}', url, outcome_badge(run), when(run.started_at or run.created_at))
    detail = run.error if run.outcome == JobOutcome.FAILED else run.counts_text()
    return format_html('<a href="{}">{}</a> {} in {}: {}', url, outcome_badge(run), when(run.started_at),
                       elapsed_text(run.duration), detail)


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    """The record of every scheduled job run; a run still going refreshes its page until it has finished."""

    list_display = ["job_name", "outcome_shown", "started", "duration_shown", "what_it_did", "started_by"]
    list_filter = ["outcome", "job", "started_by"]
    search_fields = ["job", "task_id"]
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False  # the history is long (a run every few seconds for the fold)
    readonly_fields = ("job_name", "outcome_shown", "started_by", "created_at_shown", "started", "finished",
                       "duration_shown", "what_it_did", "error", "task_id")
    fields = readonly_fields
    change_form_template = "admin/core/jobrun/change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobRun]:
        label = PeriodicTask.objects.filter(task=OuterRef("job")).order_by("id").values("name")[:1]
        return super().get_queryset(request).annotate(label=Subquery(label))

    @admin.display(description="job", ordering="job")
    def job_name(self, run: JobRun) -> str:
        label = getattr(run, "label", None)  # the schedule's name an operator knows
        return format_html("{}<br><small>{}</small>", label, run.job) if label else run.job

    @admin.display(description="outcome", ordering="outcome")
    def outcome_shown(self, run: JobRun) -> str:
        return outcome_badge(run)

    @admin.display(description="queued / started")
    def created_at_shown(self, run: JobRun) -> str:
        return when(run.created_at)

    @admin.display(description="started", ordering="started_at")
    def started(self, run: JobRun) -> str:
        return when(run.started_at)

    @admin.display(description="finished")
    def finished(self, run: JobRun) -> str:
        return when(run.finished_at)

    @admin.display(description="duration")
    def duration_shown(self, run: JobRun) -> str:
        return elapsed_text(run.duration)

    @admin.display(description="what it did")
    def what_it_did(self, run: JobRun) -> str:
        if run.outcome == JobOutcome.FAILED:
            return format_html('<span class="om-error">{}</span>', run.error)
        return run.counts_text() if run.is_finished else "—"


def _run_now(request: HttpRequest, task: PeriodicTask, data: dict[str, Any]) -> HttpResponse:
    run = job_run_now(job=task.task, actor=actor(request))
    run.refresh_from_db(fields=["outcome"])
    if run.outcome == JobOutcome.QUEUED:
        messages.info(request, f"“{task.name}” was queued; this page shows what it did once it has run.")
    return HttpResponseRedirect(reverse("admin:core_jobrun_change", args=[run.pk]))


class ScheduledJobForm(PeriodicTaskForm):
    def clean(self) -> dict[str, Any]:
        if "task" not in self.cleaned_data:  # refused by its own field (too long): that error is shown, not a 500
            return self.cleaned_data
        return super().clean()


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class ScheduledJobAdmin(ObjectActionsMixin, PeriodicTaskAdmin):
    """django_celery_beat's schedules, with each job's last run and a *Run now* that shows what the run did."""

    form = ScheduledJobForm
    list_display = ("name", "enabled", "interval", "last_run", "run_now_link")
    actions = ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks")
    change_form_template = "admin/core/periodictask/change_form.html"
    object_actions = (
        ObjectAction("run_now", "Run now", run=_run_now,
                     description="Run this job once now, beside its schedule. Every job is safe to run twice; the "
                                 "next page shows what the run did when it has finished."),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[PeriodicTask]:
        return with_last_run(super().get_queryset(request), "task")

    @admin.display(description="last run")
    def last_run(self, task: PeriodicTask) -> str:
        return run_summary(last_run_of(task))

    @admin.display(description="")
    def run_now_link(self, task: PeriodicTask) -> str:
        return format_html('<a class="button" href="{}">Run now</a>', self.object_action_url(task, "run_now"))

    @admin.action(description="Run selected jobs now")
    def run_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        runs = [(task, job_run_now(job=task.task, actor=actor(request))) for task in queryset]
        links = format_html_join(", ", '<a href="{}">{}</a>',
                                 ((reverse("admin:core_jobrun_change", args=[run.pk]), task.name) for task, run in runs))
        self.message_user(request, format_html("Queued {} run(s); follow each to see what it did: {}", len(runs), links))
