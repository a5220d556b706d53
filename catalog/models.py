from django.db import models

from metering.models import Meter
from openmeter_site.core.models import BaseModel


class Feature(BaseModel):
    key = models.CharField(max_length=64)
    name = models.CharField(max_length=256)
    metadata = models.JSONField(default=dict, blank=True)
    meter = models.ForeignKey(Meter, null=True, blank=True, on_delete=models.PROTECT, related_name="features")
    meter_slug = models.CharField(max_length=64, null=True, blank=True)
    meter_group_by_filters = models.JSONField(null=True, blank=True, help_text="groupBy key → exact value")
    advanced_meter_group_by_filters = models.JSONField(null=True, blank=True, help_text="groupBy key → FilterString")
    unit_cost = models.JSONField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=models.Q(archived_at__isnull=True), name="feature_key_live")
        ]

    def __str__(self) -> str:
        return self.key
