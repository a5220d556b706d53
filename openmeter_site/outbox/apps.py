from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "openmeter_site.outbox"
    label = "outbox"
    verbose_name = "Domain events (outbox)"
