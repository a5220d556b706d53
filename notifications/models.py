from django.db import models

from openmeter_site.core.crypto import decrypt
from openmeter_site.core.models import BaseModel, SoftDeleteModel


class ChannelType(models.TextChoices):
    WEBHOOK = "WEBHOOK"


class EventType(models.TextChoices):
    BALANCE_THRESHOLD = "entitlements.balance.threshold"
    ENTITLEMENT_RESET = "entitlements.reset"
    INVOICE_CREATED = "invoice.created"
    INVOICE_UPDATED = "invoice.updated"


class ThresholdType(models.TextChoices):
    BALANCE_VALUE = "balance_value"
    USAGE_PERCENTAGE = "usage_percentage"
    USAGE_VALUE = "usage_value"
    PERCENT = "PERCENT", "PERCENT (deprecated: usage_percentage)"
    NUMBER = "NUMBER", "NUMBER (deprecated: usage_value)"


class DeliveryState(models.TextChoices):
    PENDING = "PENDING"
    SENDING = "SENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    RESENDING = "RESENDING"


class NotificationChannel(SoftDeleteModel):
    """A webhook target. The signing secret is stored encrypted (it must be recoverable to sign)."""

    type = models.CharField(max_length=16, choices=ChannelType.choices, default=ChannelType.WEBHOOK, editable=False)
    name = models.CharField(max_length=256)
    disabled = models.BooleanField(default=False)
    url = models.CharField(max_length=2048, help_text="http(s) URL the events are POSTed to")
    custom_headers = models.JSONField(default=dict, blank=True)
    signing_secret_encrypted = models.TextField(editable=False)
    metadata = models.JSONField(null=True, blank=True)
    annotations = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def signing_secret(self) -> str:
        return decrypt(self.signing_secret_encrypted)


class NotificationRule(SoftDeleteModel):
    type = models.CharField(max_length=64, choices=EventType.choices, help_text="Immutable once created")
    name = models.CharField(max_length=256)
    disabled = models.BooleanField(default=False)
    channels = models.ManyToManyField(NotificationChannel, related_name="rules")
    # Balance-threshold rules only: [{"type": ThresholdType, "value": "<decimal string>"}]
    thresholds = models.JSONField(default=list, blank=True)
    # Threshold and reset rules: the features the rule is limited to (empty = every feature).
    features = models.ManyToManyField("catalog.Feature", related_name="+", blank=True)
    metadata = models.JSONField(null=True, blank=True)
    annotations = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_type_display()})"


class NotificationEvent(BaseModel):
    """One firing of a rule. `payload_json` is exactly the webhook body (it is what gets signed)."""

    type = models.CharField(max_length=64, choices=EventType.choices)
    rule = models.ForeignKey(NotificationRule, on_delete=models.PROTECT, related_name="events")
    payload_json = models.TextField()
    annotations = models.JSONField(default=dict, blank=True)
    # What the event is about, for the list filters (`subject[]`, `feature[]`) and the admin.
    subject_key = models.CharField(max_length=512, null=True, blank=True, db_index=True)
    feature_id = models.CharField(max_length=26, null=True, blank=True)
    feature_key = models.CharField(max_length=64, null=True, blank=True)
    entitlement_id = models.CharField(max_length=26, null=True, blank=True)
    invoice_id = models.CharField(max_length=26, null=True, blank=True)
    # A rule fires at most once per dedup key, e.g. threshold:<entitlement>:<period start>:<threshold>.
    dedup_key = models.CharField(max_length=255, null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "dedup_key"], condition=models.Q(dedup_key__isnull=False), name="notification_event_dedup"
            )
        ]
        indexes = [models.Index(fields=["created_at"], name="notification_event_created")]

    def __str__(self) -> str:
        return f"{self.get_type_display()} event {self.id}"


class NotificationDelivery(BaseModel):
    """The delivery of one event to one channel (the spec's `deliveryStatus` item).

    `attempt_count` only grows; a task carries the count it expects, so of two tasks for the same attempt
    (a Celery retry and the sweeper) only one sends, and none while `sending_until` says an attempt is in flight.
    `round_start` is the count when the current send round (first send or a resend) began: the retry budget is
    counted from there.
    """

    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.PROTECT, related_name="deliveries")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    reason = models.CharField(max_length=1024, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempt_count = models.PositiveIntegerField(default=0)
    round_start = models.PositiveIntegerField(default=0)
    # Set while an attempt is in flight (claimed, its POST not yet recorded); an attempt whose worker died lapses then.
    sending_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "notification deliveries"
        constraints = [models.UniqueConstraint(fields=["event", "channel"], name="notification_delivery_unique")]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="notification_delivery_due")]

    def __str__(self) -> str:
        return f"delivery to {self.channel}"


class NotificationDeliveryAttempt(BaseModel):
    delivery = models.ForeignKey(NotificationDelivery, on_delete=models.CASCADE, related_name="attempts")
    state = models.CharField(max_length=16, choices=DeliveryState.choices)
    timestamp = models.DateTimeField()
    url = models.CharField(max_length=2048)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["timestamp", "id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} @ {self.timestamp:%Y-%m-%dT%H:%M:%S}: {self.state}"


class EvaluationCursor(models.Model):
    """How far a scanning job has read (e.g. the event store's position after the events checked for balance
    thresholds; opaque, empty before the first run)."""

    name = models.CharField(primary_key=True, max_length=64)
    position = models.CharField(max_length=256, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"
