from django.db import models
from django.db.models.functions import Now

from openmeter_site.core.fields import DecimalColumn, QuantityColumn
from openmeter_site.core.models import BaseModel, SoftDeleteModel


class MeterAggregation(models.TextChoices):
    SUM = "SUM"
    COUNT = "COUNT"
    UNIQUE_COUNT = "UNIQUE_COUNT"
    AVG = "AVG"
    MIN = "MIN"
    MAX = "MAX"
    LATEST = "LATEST"


class WindowSize(models.TextChoices):
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    MONTH = "MONTH"


class Meter(SoftDeleteModel):
    slug = models.CharField(max_length=64)
    name = models.CharField(max_length=256)
    description = models.CharField(max_length=1024, blank=True, null=True)
    metadata = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    aggregation = models.CharField(max_length=16, choices=MeterAggregation.choices)
    event_type = models.CharField(max_length=256, db_index=True)
    event_from = models.DateTimeField(null=True, blank=True)
    value_property = models.CharField(max_length=512, null=True, blank=True)
    group_by = models.JSONField(default=dict, blank=True, help_text="Group-by key → JSONPath")
    # While not null, the meter's rollups are being (re)built and cover only events with seq < this cursor;
    # queries read raw events meanwhile. NULL = rollups complete.
    backfill_cursor = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(fields=["slug"], condition=models.Q(deleted_at__isnull=True), name="meter_slug_live")
        ]

    def __str__(self) -> str:
        return self.slug


class Event(models.Model):
    """A stored CloudEvent. Written only by the event store (one statement per batch, metering/postgres/store.py).

    The table is partitioned by range of `time`, by month around now and coarsely elsewhere
    (metering/postgres/partitions.py); its primary key is (seq, time),
    and `seq` comes from one sequence for every partition. (source, id) is de-duplicated through `EventKey`."""

    seq = models.BigAutoField(primary_key=True)
    id = models.CharField(max_length=512)
    source = models.CharField(max_length=512)
    type = models.CharField(max_length=256)
    subject = models.CharField(max_length=512)
    time = models.DateTimeField()
    data = models.JSONField(null=True, blank=True)
    ingested_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [
            models.Index(fields=["time", "seq"], name="event_time_seq"),
            models.Index(fields=["subject", "time"], name="event_subject_time"),
        ]

    def __str__(self) -> str:
        return f"{self.source}/{self.id}"


class EventKey(models.Model):
    """The (source, id) of every event stored in the last `DEDUP_WINDOW` (32 days) or more: the event table is
    partitioned by time, so it cannot hold a unique index on (source, id) itself. Written by the statement that
    stores the events (a key that is already here drops its event), purged by the maintenance job."""

    pk = models.CompositePrimaryKey("source", "id")
    source = models.CharField(max_length=512)
    id = models.CharField(max_length=512)
    stored_at = models.DateTimeField(db_default=Now())  # BRIN-indexed (migration 0007): keys arrive in time order

    def __str__(self) -> str:
        return f"{self.source}/{self.id}"


class PendingEvent(models.Model):
    """Events stored but not yet folded into rollups (the raw tail that queries add to the rollups), by fold shard
    (a hash of the subject) so that folds run in parallel, one per shard; `time` finds the event's partition."""

    pk = models.CompositePrimaryKey("shard", "seq")
    shard = models.SmallIntegerField()
    seq = models.BigIntegerField()
    time = models.DateTimeField()

    def __str__(self) -> str:
        return str(self.seq)


class Rollup(models.Model):
    """Per-meter pre-aggregates at minute, hour and day (UTC) resolution (derived data: rebuildable from events).

    Rows with subject '' (never a real subject: ingest requires one) hold HOUR and DAY buckets of all subjects
    together, for queries that neither filter nor group by subject or customer.

    The composite primary key is the upsert target and serves per-subject reads; no foreign-key check and no
    surrogate id, so a fold writes one heap row and two index entries per bucket."""

    class Resolution(models.IntegerChoices):
        MINUTE = 1
        HOUR = 2
        DAY = 3

    pk = models.CompositePrimaryKey("meter", "resolution", "subject", "bucket", "groups", "uvalue")
    meter = models.ForeignKey(Meter, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False)
    resolution = models.SmallIntegerField(choices=Resolution.choices)
    bucket = models.DateTimeField()
    subject = models.CharField(max_length=512)
    groups = models.JSONField(default=dict)
    uvalue = models.TextField(default="", blank=True, help_text="Distinct value (UNIQUE_COUNT meters only)")
    # NUMERIC(57, 19), not (38, 19): one event's value is under 1E+19 (`om_to_value`), a bucket's sum need not be
    sum = QuantityColumn(null=True)
    count = models.BigIntegerField(default=0)
    min = DecimalColumn(null=True)
    max = DecimalColumn(null=True)
    first_time = models.DateTimeField(null=True, help_text="Earliest event time folded into the bucket")
    latest_time = models.DateTimeField(null=True, help_text="Latest event time folded into the bucket")
    latest_seq = models.BigIntegerField(null=True, help_text="Seq of the latest event (breaks time ties)")
    latest_value = DecimalColumn(null=True)

    class Meta:
        indexes = [models.Index(fields=["meter", "resolution", "bucket"], name="rollup_bucket")]

    def __str__(self) -> str:
        return f"{self.meter_id}/{self.resolution}/{self.bucket:%Y-%m-%dT%H:%M}/{self.subject}"


class ClickHouseEventKey(models.Model):
    """De-duplication of the ClickHouse event store (`metering.clickhouse`): the (source, id) of every event it
    stored in the last 32 days or more. Ingest adds a batch's keys in the transaction that inserts its new events
    into ClickHouse, so an event is stored once whatever the retries and concurrent batches. Unused by the
    PostgreSQL store (its event table de-duplicates itself)."""

    pk = models.CompositePrimaryKey("source", "id")
    source = models.CharField(max_length=512)
    id = models.CharField(max_length=512)
    stored_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["stored_at"], name="chkey_stored_at")]

    def __str__(self) -> str:
        return f"{self.source}/{self.id}"


class ClickHouseMeterView(models.Model):
    """The ClickHouse event store's aggregates of a meter (`metering.clickhouse.views`): its table and materialized
    view are those of `generation`, built for the meter's `definition`; queries read them once `ready`, the raw
    events before. Unused by the PostgreSQL store."""

    meter = models.OneToOneField(Meter, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False,
                                 related_name="+")
    generation = models.IntegerField(default=0)
    definition = models.JSONField(default=dict)
    ready = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.meter_id}/{self.generation}"


class Subject(BaseModel):
    key = models.CharField(max_length=512, unique=True)
    display_name = models.CharField(max_length=512, null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key
