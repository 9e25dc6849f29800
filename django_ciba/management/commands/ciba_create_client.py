import argparse
import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings

from django_ciba.client_keys import InvalidClientKeys, parse_jwks, supported_algorithms
from django_ciba.conf import ciba_settings
from django_ciba.exceptions import InvalidClientMetadata
from django_ciba.models import AuthMethod, CibaClient, DeliveryMode, SubjectType
from django_ciba.secrets import generate_client_secret
from django_ciba.sectors import validate_sector


class Command(BaseCommand):
    help = (
        "Create a confidential DOT Application registered for CIBA; prints its credentials as JSON. "
        "A private_key_jwt client needs its public keys (--jwks-file or --jwks-uri) and gets no "
        "usable client_secret."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--mode", choices=DeliveryMode.values, default=DeliveryMode.POLL)
        parser.add_argument("--notification-endpoint", default="")
        parser.add_argument(
            "--auth-method", choices=AuthMethod.values, default=AuthMethod.CLIENT_SECRET_BASIC
        )
        parser.add_argument("--scope", default="", help="Scopes the client may request (default: any).")
        keys = parser.add_mutually_exclusive_group()
        keys.add_argument("--jwks-file", metavar="FILE", help="The client's public keys: a JSON JWK set.")
        keys.add_argument(
            "--jwks-uri", metavar="URL", default="", help="Where the client publishes its JWK set."
        )
        parser.add_argument(
            "--signing-alg",
            metavar="ALG",
            default="",
            help="backchannel_authentication_request_signing_alg: the client signs its requests with ALG.",
        )
        parser.add_argument(
            "--auth-signing-alg",
            metavar="ALG",
            default="",
            help="token_endpoint_auth_signing_alg: the only algorithm accepted for its client assertions.",
        )
        parser.add_argument(
            "--subject-type",
            choices=SubjectType.values,
            default=SubjectType.PUBLIC,
            help="pairwise needs a sector the client proves: a push notification endpoint, the "
            "--jwks-uri of a private_key_jwt client, or a --sector-identifier-uri listing one of them.",
        )
        parser.add_argument(
            "--sector-identifier-uri",
            metavar="URL",
            default="",
            help="A JSON list of the client's URLs (fetched now); its host is the pairwise sector.",
        )

        parser.add_argument(
            "--rate-limit",
            metavar="N/SECONDS",
            type=_rate_limit,
            default=None,
            help=(
                "At most N bc-authorize requests from this client per SECONDS seconds, or 'none' for no "
                "limit whatever CIBA['CLIENT_RATE_LIMIT'] says (default: CIBA['CLIENT_RATE_LIMIT'], "
                "which is off unless set)."
            ),
        )

    def handle(self, *args, **options):
        offered = list(ciba_settings.DELIVERY_MODES or [])
        if options["mode"] not in offered:
            raise CommandError(
                f"--mode {options['mode']}: not in CIBA['DELIVERY_MODES'] ({', '.join(offered)})."
            )
        private_key_jwt = options["auth_method"] == AuthMethod.PRIVATE_KEY_JWT
        request_alg = _algorithm(options["signing_alg"], "--signing-alg")
        auth_alg = _algorithm(options["auth_signing_alg"], "--auth-signing-alg")
        jwks = _read_jwks(options["jwks_file"]) if options["jwks_file"] else None
        Application = get_application_model()
        algorithm = "RS256" if oauth2_settings.OIDC_RSA_PRIVATE_KEY else "HS256"
        if private_key_jwt and algorithm == "HS256":
            # HS256 ID tokens are keyed with the client secret, which such a client never learns.
            raise CommandError(
                "private_key_jwt clients need RS256 ID tokens: set OAUTH2_PROVIDER['OIDC_RSA_PRIVATE_KEY']."
            )
        # A private_key_jwt client still gets a (hashed, never shown) random secret, as DOT's
        # Application requires one; the validator refuses secrets for such clients anyway.
        secret = generate_client_secret()
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
                token_endpoint_auth_signing_alg=auth_alg,
                request_signing_alg=request_alg,
                jwks=jwks,
                jwks_uri=options["jwks_uri"],
                subject_type=options["subject_type"],
                sector_identifier_uri=options["sector_identifier_uri"],
                scope=" ".join(options["scope"].split()),
                ciba_only=True,
            )
            if options["rate_limit"] is not None:
                ciba.rate_limit_requests, ciba.rate_limit_period = options["rate_limit"]
            try:
                ciba.full_clean(exclude=["application"])
            except ValidationError as exc:
                raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
            try:
                validate_sector(ciba)  # REG-06: fetches a sector_identifier_uri
            except InvalidClientMetadata as exc:
                raise CommandError(exc.description)
            ciba.save()
        credentials = {"client_id": application.client_id}
        if not private_key_jwt:
            credentials["client_secret"] = secret
        self.stdout.write(
            json.dumps(
                {
                    **credentials,
                    "name": application.name,
                    "delivery_mode": ciba.delivery_mode,
                    "notification_endpoint": ciba.notification_endpoint,
                    "token_endpoint_auth_method": ciba.token_endpoint_auth_method,
                    "token_endpoint_auth_signing_alg": ciba.token_endpoint_auth_signing_alg,
                    "backchannel_authentication_request_signing_alg": ciba.request_signing_alg,
                    "jwks_uri": ciba.jwks_uri,
                    "subject_type": ciba.subject_type,
                    "sector_identifier_uri": ciba.sector_identifier_uri,
                    "scope": ciba.scope,
                    "rate_limit": _shown_rate_limit(ciba),
                }
            )
        )


def _algorithm(value: str, option: str) -> str:
    """An asymmetric JWS algorithm of ``SIGNING_ALGORITHMS``, or "" when not given."""
    if not value:
        return ""
    if value.lower() == "none" or value.upper().startswith("HS"):
        raise CommandError(f"{option}: {value} is not accepted; use an asymmetric algorithm such as PS256.")
    supported = supported_algorithms()
    if value not in supported:
        raise CommandError(
            f"{option}: {value} is not one of CIBA['SIGNING_ALGORITHMS'] ({', '.join(supported)})."
        )
    return value


def _rate_limit(value: str) -> tuple[int, int | None]:
    """``N/SECONDS`` (two positive integers) or ``none`` (stored as 0 requests: no limit)."""
    if value.strip().lower() == "none":
        return 0, None
    requests, _, seconds = value.partition("/")
    try:
        pair = int(requests), int(seconds)
    except ValueError:
        pair = (0, 0)
    if min(pair) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: use N/SECONDS with two positive integers, or none.")
    return pair


def _shown_rate_limit(ciba: CibaClient) -> str | None:
    """The client's own limit as given to --rate-limit; None when CIBA['CLIENT_RATE_LIMIT'] applies."""
    if ciba.rate_limit is None:
        return None
    requests, seconds = ciba.rate_limit
    return f"{requests}/{seconds}" if requests else "none"


def _read_jwks(path: str) -> dict:
    """The JWK set in ``path``, checked as registration checks it (public signing keys only)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"--jwks-file: cannot read {path}: {exc.strerror or exc}")
    except ValueError:
        raise CommandError("--jwks-file: the file is not valid JSON.")
    try:
        parse_jwks(document)
    except InvalidClientKeys as exc:
        raise CommandError(f"--jwks-file: {exc}")
    return document
