from django.core.management.base import BaseCommand, CommandError

from django_ciba.delivery import maintenance


class Command(BaseCommand):
    help = (
        "Expire overdue CIBA requests (pushing expired_token to push clients), send the reminders due "
        "(CIBA['REMINDERS']), re-enqueue overdue "
        "deliveries, and delete finished requests older than the retention period, in batches."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--retention",
            type=int,
            default=None,
            help="Delete finished requests last changed more than this many seconds ago "
            "(default: CIBA['MAINTENANCE']['RETENTION']).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Rows per batch (default: CIBA['MAINTENANCE']['BATCH_SIZE']).",
        )
        parser.add_argument("--no-sweep", action="store_true", help="Do not re-enqueue overdue deliveries.")

    def handle(self, *args, **options):
        retention, batch_size = options["retention"], options["batch_size"]
        if retention is not None and retention < 0:
            raise CommandError("--retention must be zero or more seconds.")
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        expired = maintenance.expire_overdue(batch_size=batch_size)
        reminded = maintenance.remind_due(batch_size=batch_size)
        swept = 0 if options["no_sweep"] else maintenance.sweep_outbox(batch_size=batch_size)
        deleted = maintenance.purge_finished(retention=retention, batch_size=batch_size)
        self.stdout.write(f"expired={expired} reminded={reminded} re-enqueued={swept} deleted={deleted}")
