"""The transactional outbox: a domain event is a row written in the same transaction as the change it reports,
with one delivery row per handler registered for its topic (see `openmeter_site.outbox.services`)."""

from django.db import models
from django.utils import timezone

from openmeter_site.core.ids import new_id


class OutboxEvent(models.Model):
    id = models.CharField(primary_key=True, max_length=26, default=new_id, editable=False)
    topic = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "domain event"

    def __str__(self) -> str:
        return f"{self.topic} {self.id}"


class DeliveryState(models.TextChoices):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # out of attempts; an admin retries it


class OutboxDelivery(models.Model):
    """One event for one handler: done in the same transaction as the handler's own writes."""

    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries")
    handler = models.CharField(max_length=100)
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="empty: due now")
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "domain event delivery"
        verbose_name_plural = "domain event deliveries"
        constraints = [models.UniqueConstraint(fields=["event", "handler"], name="outbox_delivery_once_per_handler")]
        indexes = [
            models.Index(
                models.F("next_attempt_at").asc(nulls_first=True),
                "id",
                name="outbox_delivery_due",
                condition=models.Q(state="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.handler} ← {self.event_id}"
