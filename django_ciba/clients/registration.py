"""Dynamic client registration of CIBA clients (RFC 7591) and its management protocol (RFC 7592).

DOT's own registration view cannot register CIBA clients (one grant per application, no CIBA
metadata), so this module creates the DOT ``Application`` and its
:class:`~django_ciba.models.CibaClient` itself, in one transaction. The metadata rules live in
:mod:`django_ciba.clients.metadata`.

Credentials: the client secret is stored as DOT stores it (hashed when the OP signs ID tokens with
RS256); initial access tokens and registration access tokens are random strings of which only the
SHA-256 hash is stored. None of them is ever logged, rendered by ``__str__`` or sent with a signal.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.hashers import check_password, identify_hasher
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import models, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from oauth2_provider.models import AbstractApplication, get_application_model

from django_ciba.clients.information import client_information
from django_ciba.clients.metadata import field_error, validate_metadata
from django_ciba.clients.profile_rules import check_registration
from django_ciba.clients.secrets import generate_client_secret, id_token_algorithm
from django_ciba.clients.sectors import check_sector_identifier
from django_ciba.core import strict_json
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import InvalidClientMetadata, InvalidToken
from django_ciba.models import CibaClient, InitialAccessToken


logger = logging.getLogger(__name__)

#: Largest accepted registration request body.
MAX_BODY_BYTES = 64 * 1024
#: Random bytes in initial and registration access tokens (256 bits, 43 URL-safe characters).
TOKEN_BYTES = 32
#: Issued by the server: ignored in a registration request (RFC 7591 §3.1, RFC 7592 §2.2).
ISSUED_FIELDS = (
    "client_id",
    "client_secret",
    "client_id_issued_at",
    "client_secret_expires_at",
    "registration_access_token",
    "registration_client_uri",
)
# RFC 6750 §2.1 b64token
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]{1,512}=*")


def hash_token(token: str) -> str:
    """SHA-256 (hex) of an initial or registration access token: the only form stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def bearer_token(django_request: Any) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1), or None."""
    header = django_request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _B64TOKEN.fullmatch(token):
        return None
    return token


# --------------------------------------------------------------------------------------------
# Request bodies


def parse_json_body(django_request: Any) -> dict[str, Any]:
    """The JSON object of a registration request; :class:`InvalidClientMetadata` if malformed."""
    media_type, *params = (django_request.META.get("CONTENT_TYPE") or "").split(";")
    if media_type.strip().lower() != "application/json":
        raise InvalidClientMetadata("The request body must be application/json.")
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise InvalidClientMetadata("The request body must be UTF-8.")
    try:
        announced = int(django_request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        announced = 0
    if announced > MAX_BODY_BYTES:
        raise InvalidClientMetadata(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        body = django_request.body
    except RequestDataTooBig:
        raise InvalidClientMetadata(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidClientMetadata(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        data = strict_json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidClientMetadata("The request body is not valid UTF-8.")
    except (ValueError, RecursionError):
        raise InvalidClientMetadata("The request body is not valid JSON (or repeats a member).")
    if not isinstance(data, dict):
        raise InvalidClientMetadata("The request body must be a JSON object.")
    return data


# --------------------------------------------------------------------------------------------
# Initial access tokens


def create_initial_access_token(
    *, label: str = "", expires_in: int | None = None, uses: int | None = None
) -> tuple[str, InitialAccessToken]:
    """A new initial access token: ``(token, row)``. The token exists only in the return value."""
    token = new_token()
    row = InitialAccessToken.objects.create(
        token_hash=hash_token(token),
        label=label,
        expires_at=timezone.now() + timedelta(seconds=expires_in) if expires_in is not None else None,
        uses_left=uses,
    )
    return token, row


def _find_initial_access_token(token: str | None) -> InitialAccessToken:
    if not token:
        raise InvalidToken()
    digest = hash_token(token)
    row = InitialAccessToken.objects.filter(token_hash=digest).first()
    if row is None or not secrets.compare_digest(row.token_hash, digest):
        raise InvalidToken()
    if (row.expires_at is not None and row.expires_at <= timezone.now()) or row.uses_left == 0:
        raise InvalidToken()
    return row


def _spend_initial_access_token(row: InitialAccessToken) -> None:
    """Use the token once: a conditional update, so concurrent registrations cannot overspend it."""
    spent = (
        InitialAccessToken.objects.filter(pk=row.pk)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .filter(Q(uses_left__isnull=True) | Q(uses_left__gt=0))
        .update(
            uses_left=Case(
                When(uses_left__isnull=True, then=Value(None)),
                default=F("uses_left") - 1,
                output_field=models.PositiveIntegerField(),
            )
        )
    )
    if not spent:
        raise InvalidToken()


# --------------------------------------------------------------------------------------------
# Registration and management


@dataclass
class RegisteredClient:
    """A registered client and the credentials that can be shown in the current answer only."""

    application: Any
    ciba: CibaClient
    registration_access_token: str
    client_secret: str | None = None

    def as_dict(self, registration_client_uri: str) -> dict[str, Any]:
        """The client information response (RFC 7591 §3.2.1, RFC 7592 §3)."""
        body = client_information(self.application, self.ciba)
        if self.client_secret is not None:
            body["client_secret"] = self.client_secret
            body["client_secret_expires_at"] = 0
        body["registration_access_token"] = self.registration_access_token
        body["registration_client_uri"] = registration_client_uri
        return body


def _uses_secret(ciba: CibaClient) -> bool:
    return ciba.token_endpoint_auth_method in ("", "client_secret_basic", "client_secret_post")


def _validate(data: dict[str, Any], application: Any, ciba: CibaClient) -> Any:
    """Validate ``data`` and apply it to the (unsaved) rows; return the metadata."""
    metadata = validate_metadata({key: value for key, value in data.items() if key not in ISSUED_FIELDS})
    for name, value in metadata.application_fields().items():
        setattr(application, name, value)
    for name, value in metadata.ciba_fields().items():
        setattr(ciba, name, value)
    check_registration(data, metadata, ciba)  # FAPI-CIBA (FAPI-03, -06, -12, -13, -15)
    try:
        ciba.full_clean(exclude=["application"])
        application.full_clean()
    except ValidationError as exc:
        raise field_error(exc)
    check_sector_identifier(metadata, metadata.redirect_uris.split())  # last: the only network check
    return metadata


def register(data: dict[str, Any], *, initial_access_token: str | None = None) -> RegisteredClient:
    """Register a CIBA client (RFC 7591 §3); raise :class:`InvalidToken` or a metadata error.

    Unless ``REGISTRATION_OPEN``, ``initial_access_token`` must name a usable
    :class:`~django_ciba.models.InitialAccessToken`; one use of it is spent only if the client is
    created.
    """
    grant = None if ciba_settings.REGISTRATION_OPEN else _find_initial_access_token(initial_access_token)
    Application = get_application_model()
    algorithm = id_token_algorithm()
    secret = generate_client_secret()
    application = Application(
        client_type=AbstractApplication.CLIENT_CONFIDENTIAL,
        client_secret=secret,
        # An HS256 OP signs ID tokens with the secret, so it must stay readable.
        hash_client_secret=algorithm == AbstractApplication.RS256_ALGORITHM,
        algorithm=algorithm,
    )
    if any(model_field.name == "registration_source" for model_field in Application._meta.fields):
        application.registration_source = "dcr"
    ciba = CibaClient()
    metadata = _validate(data, application, ciba)
    token = new_token()
    ciba.registration_access_token_hash = hash_token(token)
    with transaction.atomic():
        if grant is not None:
            _spend_initial_access_token(grant)
        application.save()
        ciba.application = application
        ciba.save()
    logger.info(
        "Registered client %s dynamically (%s mode%s)",
        application.client_id,
        ciba.delivery_mode,
        f", initial access token #{grant.pk}" if grant is not None else "",
    )
    return RegisteredClient(application, ciba, token, secret if metadata.uses_secret else None)


def authenticate(client_id: str, token: str | None) -> CibaClient:
    """The registration whose ``registration_access_token`` is ``token`` (RFC 7592 §2).

    An unknown client_id, a client registered otherwise (no token) and a wrong token all raise the
    same :class:`InvalidToken`.
    """
    ciba = None
    if token:
        try:
            ciba = (
                CibaClient.objects.select_related("application")
                .filter(application__client_id=client_id)
                .first()
            )
        except ValueError:  # e.g. a NUL byte that PostgreSQL refuses
            ciba = None
    stored = ciba.registration_access_token_hash if ciba is not None else ""
    digest = hash_token(token or "")
    if not secrets.compare_digest(stored or "0" * 64, digest) or not stored:
        raise InvalidToken()
    return ciba  # type: ignore[return-value]


def _check_secret(provided: Any, stored: str) -> bool:
    if not isinstance(provided, str):
        return False
    try:
        identify_hasher(stored)
    except ValueError:
        return secrets.compare_digest(provided.encode("utf-8"), stored.encode("utf-8"))
    return check_password(provided, stored)


def update(ciba: CibaClient, data: dict[str, Any], *, registration_access_token: str) -> RegisteredClient:
    """Replace the client's metadata (RFC 7592 §2.2); fields left out take their default values.

    ``client_id`` must be the client's; a ``client_secret``, if sent, must be its current secret.
    Switching to a secret-based authentication method issues a new secret (returned once);
    switching away from one retires the old secret.
    """
    application = ciba.application
    if data.get("client_id") != application.client_id:
        raise InvalidClientMetadata("client_id: must be this client's client_id.")
    sent_secret = data.get("client_secret")
    if sent_secret is not None and not _check_secret(sent_secret, application.client_secret):
        raise InvalidClientMetadata("client_secret: does not match the client's secret.")
    had_secret = _uses_secret(ciba)
    metadata = _validate(data, application, ciba)
    new_secret = None
    if metadata.uses_secret != had_secret:
        # The old secret stops working either way; only a secret-based client learns the new one.
        secret = generate_client_secret()
        application.client_secret = secret
        new_secret = secret if metadata.uses_secret else None
    with transaction.atomic():
        application.save()
        ciba.save()
    logger.info("Client %s updated its registration", application.client_id)
    return RegisteredClient(application, ciba, registration_access_token, new_secret)


def delete(ciba: CibaClient) -> None:
    """Deregister the client (RFC 7592 §2.3): its Application and everything hanging off it."""
    client_id = ciba.application.client_id
    with transaction.atomic():
        ciba.application.delete()
    logger.info("Client %s deleted its registration", client_id)
