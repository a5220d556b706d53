import datetime as dt

from django.db import models
from django.utils import timezone

from openmeter_site.core.models import BaseModel


class PortalToken(BaseModel):
    """A consumer portal token: reads one subject's usage of some meters until it expires or is invalidated.

    The token is an opaque random string shown once; only its SHA-256 is stored.
    """

    subject = models.CharField(max_length=512, db_index=True)
    allowed_meter_slugs = models.JSONField(null=True, blank=True, help_text="Meter slugs; empty = every meter")
    expires_at = models.DateTimeField()
    invalidated_at = models.DateTimeField(null=True, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=24, editable=False, help_text="First characters, to recognise a token")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.subject} ({self.prefix}…)"

    def is_expired(self, at: dt.datetime | None = None) -> bool:
        return self.invalidated_at is not None or self.expires_at <= (at or timezone.now())

    def allows_meter(self, slug: str) -> bool:
        return not self.allowed_meter_slugs or slug in self.allowed_meter_slugs
