"""Back office pages that read several domains; each domain app's own admin stays in that app.

The customer's page is the hub of a billing person's day: the customers app's admin (its typed form, its delete
action) extended with the customer's whole story (`backoffice.hub`) and the actions that span apps: subscribe, add
a one-off charge, invoice now, and the links to each subscription's and entitlement's own actions, which bring the
operator back here."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from backoffice.hub import CustomerStory, customer_story
from billing.admin_actions import CUSTOMER_BILLING_ACTIONS
from customers.admin import CustomerAdmin
from customers.models import Customer
from entitlements.models import Entitlement, Grant
from openmeter_site.admin_ui.charts import bar_chart
from openmeter_site.admin_ui.display import quantity_text
from subscriptions.admin import SUBSCRIBE
from subscriptions.models import Subscription

admin.site.site_header = "OpenMeter back office"
admin.site.site_title = "OpenMeter back office"
admin.site.index_title = "Billing operations"
# the front page: the dashboard (backoffice.dashboard) above the list of apps
admin.site.index_template = "admin/backoffice/index.html"

admin.site.unregister(Customer)


@admin.register(Customer)
class CustomerHubAdmin(CustomerAdmin):
    change_form_template = "admin/backoffice/customer_hub.html"
    object_actions = (SUBSCRIBE, *CUSTOMER_BILLING_ACTIONS, *CustomerAdmin.object_actions)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[str | None, dict[str, Any]]]:
        """On a customer's page the story comes first; its details are there to edit, folded."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [(name or "Details", {**options, "classes": ["collapse"]}) for name, options in fieldsets]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        customer = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if customer is not None:
            context.update(self.story_context(request, customer_story(customer)), title=customer.name, subtitle=None,
                           show_save_and_add_another=False)
        return super().change_view(request, object_id, form_url, context)

    def story_context(self, request: HttpRequest, story: CustomerStory) -> dict[str, Any]:
        here = request.get_full_path()
        subscriptions = self.admin_site._registry[Subscription]
        entitlements = self.admin_site._registry[Entitlement]
        grants = self.admin_site._registry[Grant]
        return {
            "story": story,
            "subscription_rows": [(row, subscriptions.action_links(request, row.subscription, next_url=here))
                                  for row in story.subscriptions],
            "entitlement_rows": [(row, entitlements.action_links(request, row.entitlement, next_url=here))
                                 for row in story.entitlements],
            "grant_rows": [(row, grants.action_links(request, row.grant, next_url=here)) for row in story.grants],
            "usage_charts": [
                bar_chart([timezone.localtime(day).strftime("%b %-d") for day, _ in row.days],
                          [value for _, value in row.days], title=f"{row.feature.name}: usage per day this period",
                          value_text=quantity_text)
                for row in story.usage if row.days
            ],
        }
