from django.db.models import Count, Min
from django.utils import timezone

from openmeter_site.outbox.models import DeliveryState, OutboxDelivery


def outbox_backlog() -> tuple[int, float]:
    """Deliveries not yet done (pending or failed), and the age in seconds of the oldest one's event (0 if none):
    for monitoring (a growing age means no relay runs, or a handler keeps failing)."""
    row = OutboxDelivery.objects.exclude(state=DeliveryState.DONE).aggregate(
        count=Count("id"), oldest=Min("event__created_at")
    )
    if not row["count"]:
        return 0, 0.0
    return row["count"], max(0.0, (timezone.now() - row["oldest"]).total_seconds())
