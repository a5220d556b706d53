from django.apps import AppConfig


class AdminUiConfig(AppConfig):
    """Shared pieces of the back office: money and time display, typed form fields, operator action pages,
    charts. Listed before django.contrib.admin so its templates extend the admin's."""

    name = "openmeter_site.admin_ui"
    label = "admin_ui"
    verbose_name = "Back office"
