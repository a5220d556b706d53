import datetime as dt
import hashlib
import secrets

from django.db import models
from django.utils import timezone

from openmeter_site.core.ids import new_id


class BaseModel(models.Model):
    """ULID primary key and the spec's resource timestamps."""

    id = models.CharField(primary_key=True, max_length=26, default=new_id, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class SoftDeleteModel(BaseModel):
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        abstract = True

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


def hash_secret(raw: str) -> str:
    """API keys and portal tokens are long random strings, so a fast hash is safe and keeps auth cheap."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(BaseModel):
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def set_new_secret(self) -> str:
        """Give the key a fresh secret; the raw key is returned once and never stored."""
        raw = "om_" + secrets.token_urlsafe(32)
        self.prefix = raw[:10]
        self.key_hash = hash_secret(raw)
        return raw

    @classmethod
    def issue(cls, name: str) -> tuple["ApiKey", str]:
        key = cls(name=name)
        raw = key.set_new_secret()
        key.save()
        return key, raw


class JobOutcome(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobRun(models.Model):
    """One run of a scheduled job (by the schedule, after a change, or an operator's *Run now*): when it ran, how
    long, how it ended and what it did (`counts`, e.g. {"drafts created": 12}). Written by
    `openmeter_site.core.jobs.job_run`."""

    id = models.BigAutoField(primary_key=True)
    job = models.CharField(max_length=200, help_text="The Celery task name, e.g. billing.collect_gathering_invoices")
    task_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    started_by = models.CharField(max_length=150, default="worker",
                                  help_text="schedule, worker (queued after a change) or admin:<operator>")
    outcome = models.CharField(max_length=16, choices=JobOutcome.choices, default=JobOutcome.RUNNING)
    created_at = models.DateTimeField(default=timezone.now, help_text="When it was queued (Run now) or started")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["job", "-created_at"], name="jobrun_job_latest")]

    def __str__(self) -> str:
        return f"{self.job} #{self.pk}"

    @property
    def duration(self) -> dt.timedelta | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def is_finished(self) -> bool:
        return self.outcome in (JobOutcome.SUCCEEDED, JobOutcome.FAILED)

    def counts_text(self) -> str:
        """What the run did, as an operator reads it: "drafts created: 12, customers due: 40"."""
        return ", ".join(f"{label}: {value:,}" for label, value in self.counts.items()) or "nothing counted"
