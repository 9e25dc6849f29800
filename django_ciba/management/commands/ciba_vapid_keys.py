from django.core.management.base import BaseCommand

from django_ciba.backends.webpush import generate_vapid_keys


class Command(BaseCommand):
    help = (
        "Generate a VAPID key pair for the Web Push backend and print it as the backend's "
        "OPTIONS (vapid_private_key, vapid_public_key of CIBA['NOTIFICATION_BACKEND']). Nothing is "
        "stored: keep the private key secret, e.g. in your secrets manager or environment."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--env",
            action="store_true",
            help="Print NAME=value lines (CIBA_WEBPUSH_VAPID_PRIVATE_KEY=...) for an environment file.",
        )

    def handle(self, *args, **options):
        private, public = generate_vapid_keys()
        if options["env"]:
            self.stdout.write(f"CIBA_WEBPUSH_VAPID_PRIVATE_KEY={private}")
            self.stdout.write(f"CIBA_WEBPUSH_VAPID_PUBLIC_KEY={public}")
        else:
            self.stdout.write(f'"vapid_private_key": "{private}",')
            self.stdout.write(f'"vapid_public_key": "{public}",')
