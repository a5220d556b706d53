from django.core.management.base import BaseCommand

from metering.clickhouse.copy import copy_from_postgres


class Command(BaseCommand):
    help = (
        "Copy the events stored in PostgreSQL into the ClickHouse event store (CLICKHOUSE_URL). Resumable and "
        "idempotent: run it again after an interruption, and once more after switching OPENMETER_EVENTS_BACKEND "
        "to clickhouse for the events stored meanwhile."
    )

    def add_arguments(self, parser):
        parser.add_argument("--chunk", type=int, default=50_000, help="events per transaction (default 50,000)")
        parser.add_argument("--restart", action="store_true", help="read from the first event, not the checkpoint")

    def handle(self, *args, chunk: int, restart: bool, **options):
        def progress(seq: int, read: int, new: int) -> None:
            self.stdout.write(f"up to seq {seq}: {read} events read, {new} new in ClickHouse")

        read, new = copy_from_postgres(chunk=chunk, restart=restart, progress=progress)
        self.stdout.write(self.style.SUCCESS(f"Done: {read} events read, {new} copied (the others were there)."))
