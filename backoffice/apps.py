from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The back office pages that span domains (a customer's whole story, the dashboard, scheduled jobs). It stands
    above every domain app, so it may read them all; no domain app imports it."""

    name = "backoffice"
    verbose_name = "Back office"
