from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "openmeter_site.core"
    label = "core"
    verbose_name = "Access"
