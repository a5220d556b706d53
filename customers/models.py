from django.db import models

from openmeter_site.core.models import SoftDeleteModel


class Customer(SoftDeleteModel):
    key = models.CharField(max_length=256, null=True, blank=True)
    name = models.CharField(max_length=256)
    description = models.TextField(null=True, blank=True)
    primary_email = models.CharField(max_length=320, null=True, blank=True)
    currency = models.CharField(max_length=3, null=True, blank=True)
    billing_address = models.JSONField(null=True, blank=True, help_text="Address: country, postalCode, state, ...")
    metadata = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=models.Q(deleted_at__isnull=True), name="customer_key_live")
        ]

    def __str__(self) -> str:
        return self.name

    def subject_keys(self) -> list[str]:
        """Usage attribution: events whose subject is the customer's key or one of its subject keys."""
        keys = [s.subject_key for s in self.subjects.all()]
        if self.key and self.key not in keys:
            keys.append(self.key)
        return keys


class CustomerSubject(models.Model):
    """`usageAttribution.subjectKeys`; a subject belongs to at most one live customer."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="subjects")
    subject_key = models.CharField(max_length=512)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject_key"], condition=models.Q(deleted_at__isnull=True), name="subject_one_live_customer"
            )
        ]

    def __str__(self) -> str:
        return self.subject_key
