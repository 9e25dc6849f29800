import json

from django.core.management.base import BaseCommand, CommandError

from django_ciba.clients.registration import create_initial_access_token


class Command(BaseCommand):
    help = (
        "Create an initial access token for dynamic client registration (RFC 7591 §3); prints it once, "
        "as JSON. Only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("--label", default="", help="What the token is for (shown in the admin).")
        parser.add_argument(
            "--expires-in", type=int, default=None, help="Seconds until the token expires (default: never)."
        )
        parser.add_argument(
            "--uses", type=int, default=None, help="How many clients it may register (default: unlimited)."
        )

    def handle(self, *args, **options):
        label, expires_in, uses = options["label"], options["expires_in"], options["uses"]
        if len(label) > 255:
            raise CommandError("--label must be at most 255 characters long.")
        if expires_in is not None and expires_in < 1:
            raise CommandError("--expires-in must be at least 1 second.")
        if uses is not None and uses < 1:
            raise CommandError("--uses must be at least 1.")
        token, row = create_initial_access_token(label=label, expires_in=expires_in, uses=uses)
        self.stdout.write(
            json.dumps(
                {
                    "initial_access_token": token,
                    "label": row.label,
                    "expires_at": row.expires_at.isoformat() if row.expires_at else None,
                    "uses": row.uses_left,
                }
            )
        )
