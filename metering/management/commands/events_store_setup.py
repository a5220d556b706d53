from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the event store's tables where the backend keeps them outside PostgreSQL's migrations (ClickHouse)."

    def handle(self, *args, **options):
        if settings.OPENMETER_EVENTS_BACKEND != "clickhouse":
            self.stdout.write("The postgres event store's tables come with `migrate`; nothing to do.")
            return
        from metering.clickhouse.connection import schema_ensure

        schema_ensure()
        self.stdout.write(self.style.SUCCESS("ClickHouse event store tables are in place."))
