from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the event store's tables where the backend keeps them outside PostgreSQL's migrations (ClickHouse: "
        "the events table, and each live meter's materialized view and aggregates, built from the stored events)."
    )

    def handle(self, *args, **options):
        if settings.OPENMETER_EVENTS_BACKEND != "clickhouse":
            self.stdout.write("The postgres event store's tables come with `migrate`; nothing to do.")
            return
        from metering.clickhouse import views
        from metering.clickhouse.connection import schema_ensure

        schema_ensure()
        built = views.reconcile()
        self.stdout.write(self.style.SUCCESS(f"ClickHouse event store tables are in place ({built} meters built)."))
