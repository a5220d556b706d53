"""Plans in the back office with their subscriptions: the catalog's plan admin cannot see subscriptions (they stand
above it), so this app extends it with how many subscriptions run on each version, in the list and on a plan's
page."""

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from catalog.admin_plans import PlanAdmin
from catalog.models import Plan
from subscriptions.models import Subscription


def running(at: Any, prefix: str = "") -> Q:
    """Live subscriptions that have not ended (running, canceled at a later date, or scheduled)."""
    not_ended = Q(**{f"{prefix}active_to__isnull": True}) | Q(**{f"{prefix}active_to__gt": at})
    return Q(**{f"{prefix}deleted_at__isnull": True}) & not_ended


admin.site.unregister(Plan)


@admin.register(Plan)
class PlanWithSubscriptionsAdmin(PlanAdmin):
    list_display = [*PlanAdmin.list_display, "subscription_count"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plan]:
        live = running(timezone.now(), prefix="subscriptions__")
        return super().get_queryset(request).annotate(running_subscriptions=Count("subscriptions", filter=live))

    @admin.display(description="subscriptions", ordering="running_subscriptions")
    def subscription_count(self, plan: Plan) -> int:
        return plan.running_subscriptions  # type: ignore[attr-defined]  # the queryset's annotation

    def versions_in_use(self, versions: list[Any]) -> dict[str, int]:
        counts = (Subscription.objects.filter(running(timezone.now()), plan__in=versions)
                  .values("plan").annotate(n=Count("id")).values_list("plan", "n"))
        return dict(counts)
