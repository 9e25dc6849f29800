import argparse
import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from oauth2_provider.models import AbstractApplication, get_application_model
from oauth2_provider.scopes import get_scopes_backend

from django_ciba.clients.keys import InvalidClientKeys, parse_jwks, supported_algorithms
from django_ciba.clients.secrets import generate_client_secret, id_token_algorithm
from django_ciba.clients.sectors import validate_sector
from django_ciba.core import profiles
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import InvalidClientMetadata
from django_ciba.models import AuthMethod, CibaClient, DeliveryMode, Profile, SubjectType


#: The --tls-* options: the RFC 8705 tls_client_auth_* value each one sets.
TLS_OPTIONS = {
    "subject_dn": "the subject distinguished name (RFC 4514, e.g. CN=client,O=Example,C=SE)",
    "san_dns": "a DNS name subject alternative name",
    "san_uri": "a URI subject alternative name",
    "san_ip": "an IP address subject alternative name",
    "san_email": "an e-mail address subject alternative name",
}
#: Methods whose client never learns a client_secret (no secret is printed).
NO_SECRET_METHODS = (
    AuthMethod.PRIVATE_KEY_JWT,
    AuthMethod.TLS_CLIENT_AUTH,
    AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH,
)


class Command(BaseCommand):
    help = (
        "Create a confidential DOT Application registered for CIBA, or (--application) give an existing "
        "confidential Application a CIBA registration; prints the client as JSON. A new client's "
        "client_secret is printed once; a private_key_jwt client needs its public keys (--jwks-file or "
        "--jwks-uri) and gets no usable client_secret, nor do tls_client_auth (one --tls-* value) and "
        "self_signed_tls_client_auth (its keys) clients."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument(
            "--name",
            help="Name of the new Application (default: none; required unless --application is given).",
        )
        target.add_argument(
            "--application",
            metavar="CLIENT_ID",
            help=(
                "Add the CIBA registration to this existing confidential Application instead of creating "
                "one; its secret, name and grant stay as they are and no secret is printed "
                "(default: none, a new Application is created)."
            ),
        )
        parser.add_argument(
            "--mode",
            choices=DeliveryMode.values,
            default=DeliveryMode.POLL,
            help="backchannel_token_delivery_mode; one of CIBA['DELIVERY_MODES'] (default: poll).",
        )
        parser.add_argument(
            "--notification-endpoint",
            metavar="URL",
            default="",
            help="backchannel_client_notification_endpoint, https; required for ping and push "
            "(default: none).",
        )
        parser.add_argument(
            "--auth-method",
            choices=AuthMethod.values,
            default=AuthMethod.CLIENT_SECRET_BASIC,
            help="token_endpoint_auth_method (default: client_secret_basic).",
        )
        parser.add_argument(
            "--scope",
            default="",
            help=(
                "Space-separated scopes the client may request, each one DOT offers "
                "(OAUTH2_PROVIDER['SCOPES'] or its scopes backend) (default: empty, any scope)."
            ),
        )
        keys = parser.add_mutually_exclusive_group()
        keys.add_argument(
            "--jwks-file", metavar="FILE", help="The client's public keys: a JSON JWK set (default: none)."
        )
        keys.add_argument(
            "--jwks-uri",
            metavar="URL",
            default="",
            help="Where the client publishes its JWK set, https (default: none).",
        )
        parser.add_argument(
            "--signing-alg",
            metavar="ALG",
            default="",
            help=(
                "backchannel_authentication_request_signing_alg: the client signs its requests with ALG; "
                "needs --jwks-file or --jwks-uri (default: none, unsigned requests)."
            ),
        )
        parser.add_argument(
            "--auth-signing-alg",
            metavar="ALG",
            default="",
            help=(
                "token_endpoint_auth_signing_alg: the only algorithm accepted for its client assertions "
                "(default: none, any of CIBA['SIGNING_ALGORITHMS'])."
            ),
        )
        parser.add_argument(
            "--id-token-alg",
            choices=["RS256", "PS256", "ES256"],
            default="",
            help=(
                "id_token_signed_response_alg: sign this client's ID tokens with this algorithm; PS256 "
                "and ES256 need a key in CIBA['ID_TOKEN_SIGNING_KEYS'] (default: the Application's)."
            ),
        )
        parser.add_argument(
            "--subject-type",
            choices=SubjectType.values,
            default=SubjectType.PUBLIC,
            help="pairwise needs a sector the client proves: a push notification endpoint, the "
            "--jwks-uri of a private_key_jwt client, or a --sector-identifier-uri listing one of them "
            "(default: public).",
        )
        parser.add_argument(
            "--sector-identifier-uri",
            metavar="URL",
            default="",
            help="A JSON list of the client's URLs (fetched now); its host is the pairwise sector "
            "(default: none).",
        )
        parser.add_argument(
            "--profile",
            choices=Profile.values,
            default="",
            help="Hold this client to a security profile (fapi-ciba: FAPI-CIBA ID1) even where "
            "CIBA['PROFILE'] does not (default: none, the OP's profile).",
        )
        tls = parser.add_mutually_exclusive_group()
        for kind, meaning in TLS_OPTIONS.items():
            tls.add_argument(
                f"--tls-{kind.replace('_', '-')}",
                metavar="VALUE",
                dest=f"tls_client_auth_{kind}",
                default="",
                help=f"tls_client_auth_{kind}: {meaning} of the client's certificate; exactly one of the "
                "--tls-* options goes with --auth-method tls_client_auth (default: none).",
            )
        parser.add_argument(
            "--certificate-bound-tokens",
            action="store_true",
            help="tls_client_certificate_bound_access_tokens: bind the client's tokens to its TLS client "
            "certificate (RFC 8705 §3) (default: off).",
        )
        parser.add_argument(
            "--dpop-bound-tokens",
            action="store_true",
            help="dpop_bound_access_tokens: the client must prove a DPoP key at the token endpoint, and a "
            "push client must name it in dpop_jkt (RFC 9449 §5.2) (default: off).",
        )
        parser.add_argument(
            "--authorization-details-type",
            metavar="TYPE",
            action="append",
            dest="authorization_details_types",
            default=[],
            help="authorization_details_types (RFC 9396 §10): a type of "
            "CIBA['AUTHORIZATION_DETAILS']['TYPES'] "
            "this client may request; repeat for several (default: every configured type).",
        )

        parser.add_argument(
            "--max-requested-expiry",
            metavar="SECONDS",
            type=int,
            default=None,
            help="The longest requested_expiry granted to this client, up to 604800 (7 days) "
            "(default: CIBA['MAX_EXPIRES_IN']).",
        )
        parser.add_argument(
            "--rate-limit",
            metavar="N/SECONDS",
            type=_rate_limit,
            default=None,
            help=(
                "At most N bc-authorize requests from this client per SECONDS seconds, or 'none' for no "
                "limit whatever CIBA['LIMITS']['CLIENT_RATE'] says (default: CIBA['LIMITS']['CLIENT_RATE'], "
                "which is off unless set)."
            ),
        )

    def handle(self, *args, **options):
        offered = list(ciba_settings.DELIVERY_MODES or [])
        if options["mode"] not in offered:
            raise CommandError(
                f"--mode {options['mode']}: not in CIBA['DELIVERY_MODES'] ({', '.join(offered)})."
            )
        no_secret = options["auth_method"] in NO_SECRET_METHODS
        request_alg = _algorithm(options["signing_alg"], "--signing-alg")
        auth_alg = _algorithm(options["auth_signing_alg"], "--auth-signing-alg")
        jwks = _read_jwks(options["jwks_file"]) if options["jwks_file"] else None
        if request_alg and not (jwks or options["jwks_uri"]):
            # Dynamic registration lets a client add its keys later (RFC 7592); an operator has them now.
            raise CommandError("--signing-alg needs the client's keys: give --jwks-file or --jwks-uri.")
        scope = _scope(options["scope"])
        existing = options["application"] is not None
        with transaction.atomic():
            if existing:
                application = _existing_application(options["application"])
                secret = None
            else:
                application, secret = _new_application(options["name"])
            if no_secret and application.algorithm != AbstractApplication.RS256_ALGORITHM:
                # HS256 ID tokens are keyed with the client secret, which such a client never learns.
                raise CommandError(
                    f"{options['auth_method']} clients need RS256 ID tokens: set "
                    + ("the Application's algorithm to RS256 and " if existing else "")
                    + "OAUTH2_PROVIDER['OIDC_RSA_PRIVATE_KEY']."
                )
            if not existing:
                application.save()
            ciba = CibaClient(
                application=application,
                delivery_mode=options["mode"],
                notification_endpoint=options["notification_endpoint"],
                token_endpoint_auth_method=options["auth_method"],
                token_endpoint_auth_signing_alg=auth_alg,
                request_signing_alg=request_alg,
                id_token_signed_response_alg=options["id_token_alg"],
                jwks=jwks,
                jwks_uri=options["jwks_uri"],
                subject_type=options["subject_type"],
                sector_identifier_uri=options["sector_identifier_uri"],
                scope=scope,
                # A new Application is for CIBA only; an existing one keeps the grant it had.
                ciba_only=not existing,
                profile=options["profile"],
                tls_client_certificate_bound_access_tokens=options["certificate_bound_tokens"],
                dpop_bound_access_tokens=options["dpop_bound_tokens"],
                authorization_details_types=list(options["authorization_details_types"]),
                **{f"tls_client_auth_{kind}": options[f"tls_client_auth_{kind}"] for kind in TLS_OPTIONS},
            )
            ciba.max_requested_expiry = options["max_requested_expiry"]
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
        self._warn_profile(ciba)
        credentials = {"client_id": application.client_id}
        bound = ciba.tls_client_certificate_bound_access_tokens
        if secret is not None and not no_secret:
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
                    "id_token_signed_response_alg": ciba.id_token_signed_response_alg
                    or application.algorithm,
                    "jwks_uri": ciba.jwks_uri,
                    "subject_type": ciba.subject_type,
                    "sector_identifier_uri": ciba.sector_identifier_uri,
                    "scope": ciba.scope,
                    "rate_limit": _shown_rate_limit(ciba),
                    "max_requested_expiry": ciba.max_requested_expiry,
                    "profile": ciba.profile or None,
                    **{
                        f"tls_client_auth_{kind}": getattr(ciba, f"tls_client_auth_{kind}")
                        for kind in TLS_OPTIONS
                        if getattr(ciba, f"tls_client_auth_{kind}")
                    },
                    "tls_client_certificate_bound_access_tokens": bound,
                    "dpop_bound_access_tokens": ciba.dpop_bound_access_tokens,
                    "authorization_details_types": ciba.authorization_details_types,
                }
            )
        )

    def _warn_profile(self, ciba: CibaClient) -> None:
        """What in the new registration breaks FAPI-CIBA, if it applies (check W224 lists it too)."""
        if not profiles.fapi_applies(ciba):
            return
        for name, problem in profiles.registration_problems(profiles.client_metadata(ciba)):
            self.stderr.write(f"Warning: FAPI-CIBA: {name}: {problem}")


def _new_application(name: str) -> tuple[Any, str]:
    """An unsaved confidential Application and its secret (hashed when ID tokens are RS256)."""
    Application = get_application_model()
    algorithm = id_token_algorithm()
    # A private_key_jwt client still gets a (hashed, never shown) random secret, as DOT's
    # Application requires one; the validator refuses secrets for such clients anyway.
    secret = generate_client_secret()
    application = Application(
        name=name,
        client_type=AbstractApplication.CLIENT_CONFIDENTIAL,
        authorization_grant_type=AbstractApplication.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        hash_client_secret=algorithm == AbstractApplication.RS256_ALGORITHM,
        algorithm=algorithm,
    )
    return application, secret


def _existing_application(client_id: str) -> Any:
    """The confidential Application ``client_id``, locked, that has no CIBA registration yet."""
    Application = get_application_model()
    application = Application.objects.select_for_update().filter(client_id=client_id).first()
    if application is None:
        raise CommandError(f"--application: no Application has client_id {client_id!r}.")
    if application.client_type != AbstractApplication.CLIENT_CONFIDENTIAL:
        raise CommandError("--application: CIBA clients must be confidential; this Application is public.")
    if CibaClient.objects.filter(application=application).exists():
        raise CommandError(
            "--application: this Application already has a CIBA registration; change it in the admin."
        )
    return application


def _scope(value: str) -> str:
    """The space-separated scopes of ``--scope``, each one DOT's scopes backend offers."""
    tokens = list(dict.fromkeys(value.split()))
    offered = get_scopes_backend().get_all_scopes()
    unknown = [token for token in tokens if token not in offered]
    if unknown:
        raise CommandError(
            f"--scope: unknown scope(s) {', '.join(unknown)}; DOT offers {', '.join(sorted(offered))}."
        )
    return " ".join(tokens)


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
    """The client's own limit as given to --rate-limit; None when CIBA['LIMITS']['CLIENT_RATE'] applies."""
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
