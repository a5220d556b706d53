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
