import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings

from django_ciba.models import AuthMethod, CibaClient, DeliveryMode
from django_ciba.secrets import generate_client_secret


class Command(BaseCommand):
    help = "Create a confidential DOT Application registered for CIBA; prints its credentials as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--mode", choices=DeliveryMode.values, default=DeliveryMode.POLL)
        parser.add_argument("--notification-endpoint", default="")
        parser.add_argument(
            "--auth-method", choices=AuthMethod.values, default=AuthMethod.CLIENT_SECRET_BASIC
        )
        parser.add_argument("--scope", default="", help="Scopes the client may request (default: any).")

    def handle(self, *args, **options):
        Application = get_application_model()
        secret = generate_client_secret()
        algorithm = "RS256" if oauth2_settings.OIDC_RSA_PRIVATE_KEY else "HS256"
        with transaction.atomic():
            application = Application(
                name=options["name"],
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
                client_secret=secret,
                hash_client_secret=algorithm == "RS256",
                algorithm=algorithm,
            )
            application.save()
            ciba = CibaClient(
                application=application,
                delivery_mode=options["mode"],
                notification_endpoint=options["notification_endpoint"],
                token_endpoint_auth_method=options["auth_method"],
                scope=" ".join(options["scope"].split()),
                ciba_only=True,
            )
            try:
                ciba.full_clean(exclude=["application"])
            except ValidationError as exc:
                raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
            ciba.save()
        self.stdout.write(
            json.dumps(
                {
                    "client_id": application.client_id,
                    "client_secret": secret,
                    "name": application.name,
                    "delivery_mode": ciba.delivery_mode,
                    "notification_endpoint": ciba.notification_endpoint,
                    "token_endpoint_auth_method": ciba.token_endpoint_auth_method,
                    "scope": ciba.scope,
                }
            )
        )
